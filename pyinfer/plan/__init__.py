"""Planning: kernel selection per node and the memory layout of intermediates."""
