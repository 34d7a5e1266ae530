"""pyinfer Op -> ONNX exporters, one module per op family (every module here is
imported by ``pyinfer.export.registry.load_exporters``; names starting with '_'
are helpers)."""
