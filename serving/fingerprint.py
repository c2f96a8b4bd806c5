"""A loss-independent fingerprint of an exported serving signature.

Two SavedModels with equal fingerprints have the same signature inputs and outputs, the same
ops (through every function the signature calls) and the same captured variables' dtypes and
shapes: only variable values can differ. Used to prove the loss changes training only.
"""
import collections
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
from tensorflow.python.saved_model import loader_impl  # pylint: disable=g-direct-tensorflow-import


def _tensor_specs(tensor_infos) -> Dict[str, Tuple[int, Tuple[int, ...]]]:
    return {name: (info.dtype, tuple(d.size for d in info.tensor_shape.dim)) for name, info in tensor_infos.items()}


def _called_functions(node) -> List[str]:
    names = []
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names.extend(f.name for f in attr.list.func)
    return names


def signature_fingerprint(export_dir: str, signature: str = "serving_default",
                          loaded: Optional[Any] = None) -> Dict[str, object]:
    """Inputs, outputs, op-type counts and captured variable specs of one signature (`loaded`: the
    SavedModel already loaded from `export_dir`, to spare loading it again)."""
    meta_graph = loader_impl.parse_saved_model(export_dir).meta_graphs[0]
    signature_def = meta_graph.signature_def[signature]
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    output_nodes = {info.name.split(":")[0] for info in signature_def.outputs.values()}
    pending = [name for node in meta_graph.graph_def.node if node.name in output_nodes
               for name in _called_functions(node)]
    seen, ops = set(), collections.Counter()
    while pending:
        name = pending.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            ops[node.op] += 1
            pending.extend(_called_functions(node))
    function = (loaded or tf.saved_model.load(export_dir)).signatures[signature]
    variables = [(t.dtype.name, tuple(t.shape)) for t in function.captured_inputs]
    return {"inputs": _tensor_specs(signature_def.inputs), "outputs": _tensor_specs(signature_def.outputs),
            "method": signature_def.method_name, "ops": dict(ops), "variables": variables}
