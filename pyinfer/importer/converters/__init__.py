"""ONNX converters, one module per op family (every module here is imported by
``pyinfer.importer.convert.load_converters``; names starting with '_' are helpers)."""
