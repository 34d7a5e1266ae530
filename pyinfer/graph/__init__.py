"""Graph IR, shape inference, passes and the NumPy reference evaluator."""
from .ir import Graph, Node, Op, Value

__all__ = ["Graph", "Node", "Op", "Value"]
