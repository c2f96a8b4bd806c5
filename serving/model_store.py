"""The servables: SavedModel versions found under each model's base path, as TF Serving lays them out.

`<base_path>/<version>/saved_model.pb`, version a positive integer (what the Pusher writes).
Like TF Serving's default version policy, the newest `num_versions` versions are loaded;
`refresh()` (called periodically by the server) loads newly pushed versions and unloads old ones.
"""
import dataclasses
import os
import threading
from typing import Any, Dict, List, Optional

from absl import logging
import tensorflow as tf

from serving import contract, rest_codec


@dataclasses.dataclass
class Servable:
    name: str
    version: int
    path: str
    model: Any                                   # the loaded SavedModel (keeps its variables alive)
    signatures: Dict[str, Any]                   # name -> concrete function

    def inputs(self, signature_name: str) -> Dict[str, tf.TensorSpec]:
        return dict(self.signatures[signature_name].structured_input_signature[1])

    def signature_def(self, signature_name: str) -> Dict[str, Any]:
        """The signature in TF Serving's metadata JSON layout."""
        function = self.signatures[signature_name]

        def tensor_info(name: str, dtype: tf.DType, shape: tf.TensorShape) -> Dict[str, Any]:
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in shape.as_list()]
            return {"dtype": rest_codec.dtype_name(dtype), "tensor_shape": {"dim": dims, "unknown_rank": False},
                    "name": name}

        outputs = function.structured_outputs
        return {"inputs": {k: tensor_info(k, s.dtype, s.shape) for k, s in self.inputs(signature_name).items()},
                "outputs": {k: tensor_info(k, t.dtype, t.shape) for k, t in outputs.items()},
                "method_name": "tensorflow/serving/predict"}

    def missing_values(self, signature_name: str) -> Dict[str, Any]:
        """Inputs a client may omit, and the value they then take (the raw-columns signature's)."""
        if signature_name != contract.RAW_SIGNATURE:
            return {}
        return {name: (contract.CATEGORICAL_MISSING if spec.dtype == tf.string else contract.NUMERIC_MISSING)
                for name, spec in self.inputs(signature_name).items()}


class NotFound(rest_codec.RequestError):
    def __init__(self, message: str):
        super().__init__(message, status=404)


def versions_on_disk(base_path: str) -> List[int]:
    """Version numbers under `base_path` that hold a SavedModel, newest first."""
    if not tf.io.gfile.isdir(base_path):
        return []
    found = []
    for entry in tf.io.gfile.listdir(base_path):
        entry = entry.rstrip("/")
        if entry.isdigit() and int(entry) > 0 and \
                tf.io.gfile.exists(os.path.join(base_path, entry, "saved_model.pb")):
            found.append(int(entry))
    return sorted(found, reverse=True)


class ModelStore:
    """Loaded versions of every configured model; thread-safe."""

    def __init__(self, base_paths: Dict[str, str], num_versions: int = 1):
        if num_versions < 1:
            raise ValueError(f"num_versions must be >= 1, got {num_versions}")
        self.base_paths = dict(base_paths)
        self.num_versions = num_versions
        self._servables: Dict[str, Dict[int, Servable]] = {name: {} for name in base_paths}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Loads the newest versions on disk and unloads the rest; a failed load is logged and retried."""
        for name, base_path in self.base_paths.items():
            wanted = versions_on_disk(base_path)[:self.num_versions]
            with self._lock:
                loaded = dict(self._servables[name])
            for version in wanted:
                if version in loaded:
                    continue
                path = os.path.join(base_path, str(version))
                try:
                    model = tf.saved_model.load(path)
                except Exception as error:  # pylint: disable=broad-except
                    logging.error("[serving] could not load %s version %d from %s: %s", name, version, path, error)
                    continue
                loaded[version] = Servable(name, version, path, model, dict(model.signatures))
                print(f"[serving] loaded model {name!r} version {version} from {path}", flush=True)
            if wanted:  # never unload the last versions because the directory was emptied
                loaded = {v: s for v, s in loaded.items() if v in wanted or v > max(wanted)}
            with self._lock:
                self._servables[name] = loaded

    def _loaded(self, name: str) -> Dict[int, Servable]:
        if name not in self._servables:
            raise NotFound(f"Servable not found for request: model {name!r} is not served "
                           f"(models: {sorted(self._servables)})")
        return self._servables[name]

    def get(self, name: str, version: Optional[int] = None) -> Servable:
        with self._lock:
            loaded = self._loaded(name)
            if version is None:
                if not loaded:
                    raise NotFound(f"Servable not found for request: no version of model {name!r} is loaded "
                                   f"(none under {self.base_paths[name]})")
                return loaded[max(loaded)]
            if version not in loaded:
                raise NotFound(f"Servable not found for request: model {name!r} version {version} is not loaded "
                               f"(loaded: {sorted(loaded)})")
            return loaded[version]

    def loaded_versions(self, name: str) -> List[int]:
        with self._lock:
            return sorted(self._loaded(name), reverse=True)
