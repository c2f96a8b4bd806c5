"""The servables: SavedModel versions found under each model's base path, as TF Serving lays them out.

`<base_path>/<version>/saved_model.pb`, version a positive integer (what the Pusher writes; a folder
with any other name, such as a copy in progress under a temporary name, is not a version).
`refresh()`, called at start and then periodically by the server, keeps the newest `num_versions`
versions that load and answer a warm-up request, as TF Serving's availability-preserving policy does:
- a new version is swapped in only once it has loaded and answered; until then the old one serves;
- a version that fails is reported (state END with its error) and logged once; it is tried again only
  when its files change (a copy that was still being written);
- a version deleted from disk is unloaded, after the version that replaces it is ready (roll back by
  deleting the newest).
"""
import dataclasses
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

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

    def warm_up(self) -> None:
        """Calls every signature on one example (missing values where the signature has them, else
        empty or zero), so a version that loads but cannot answer is never served."""
        for signature_name, function in self.signatures.items():
            missing = self.missing_values(signature_name)
            example = {name: tf.constant([missing.get(name, b"" if spec.dtype == tf.string else 0)], spec.dtype)
                       for name, spec in self.inputs(signature_name).items()}
            for output in function(**example).values():
                output.numpy()

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


def files_stamp(path: str) -> Tuple[Tuple[str, int, int], ...]:
    """(file, size, mtime) of every file of a version: changes while a copy is being written."""
    stamp = []
    for folder, _, files in tf.io.gfile.walk(path):
        for name in files:
            stat = tf.io.gfile.stat(os.path.join(folder, name))
            stamp.append((os.path.relpath(os.path.join(folder, name), path), stat.length, stat.mtime_nsec))
    return tuple(sorted(stamp))


@dataclasses.dataclass
class FailedVersion:
    error: str
    stamp: Tuple[Tuple[str, int, int], ...]


class ModelStore:
    """Loaded and failed versions of every configured model; thread-safe."""

    def __init__(self, base_paths: Dict[str, str], num_versions: int = 1):
        if num_versions < 1:
            raise ValueError(f"num_versions must be >= 1, got {num_versions}")
        self.base_paths = dict(base_paths)
        self.num_versions = num_versions
        self._servables: Dict[str, Dict[int, Servable]] = {name: {} for name in base_paths}
        self._failed: Dict[str, Dict[int, FailedVersion]] = {name: {} for name in base_paths}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Serves the newest `num_versions` versions on disk that load and answer; see the module docstring."""
        for name, base_path in self.base_paths.items():
            try:
                on_disk = versions_on_disk(base_path)
            except tf.errors.OpError as error:  # an unreadable base path: keep serving what is loaded
                logging.error("[serving] cannot list %s for model %r: %s", base_path, name, error)
                continue
            with self._lock:
                loaded, failed = dict(self._servables[name]), dict(self._failed[name])
            failed = {v: f for v, f in failed.items() if v in on_disk}
            serving: Dict[int, Servable] = {}
            for version in on_disk:
                if len(serving) == self.num_versions:
                    break
                if version in loaded:
                    serving[version] = loaded[version]
                    continue
                servable = self._load(name, base_path, version, failed)
                if servable is not None:
                    serving[version] = servable
            with self._lock:  # one swap: requests see the old set or the new, never none in between
                self._servables[name], self._failed[name] = serving, failed

    def _load(self, name: str, base_path: str, version: int, failed: Dict[int, FailedVersion]) -> Optional[Servable]:
        """The loaded, warmed-up version, or None (recorded in `failed`, logged when first seen)."""
        path = os.path.join(base_path, str(version))
        try:
            stamp = files_stamp(path)
        except tf.errors.OpError:  # deleted while we looked
            return None
        if version in failed and failed[version].stamp == stamp:
            return None  # failed before, and no file changed since
        try:
            model = tf.saved_model.load(path)
            servable = Servable(name, version, path, model, dict(model.signatures))
            servable.warm_up()
        except Exception as error:  # pylint: disable=broad-except
            failed[version] = FailedVersion(f"{type(error).__name__}: {error}", stamp)
            logging.error("[serving] model %r version %d at %s is not served: it failed to load or to answer a "
                          "warm-up request: %s", name, version, path, failed[version].error)
            return None
        failed.pop(version, None)
        print(f"[serving] loaded model {name!r} version {version} from {path}", flush=True)
        return servable

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
                                   f"(none that loads under {self.base_paths[name]})")
                return loaded[max(loaded)]
            if version not in loaded:
                failure = self._failed[name].get(version)
                raise NotFound(f"Servable not found for request: model {name!r} version {version} is not loaded "
                               + (f"(it failed: {failure.error})" if failure else f"(loaded: {sorted(loaded)})"))
            return loaded[version]

    def loaded_versions(self, name: str) -> List[int]:
        with self._lock:
            return sorted(self._loaded(name), reverse=True)

    def version_states(self, name: str) -> List[Dict[str, Any]]:
        """TF Serving's `model_version_status`: loaded versions AVAILABLE, failed ones END with their error,
        newest first."""
        with self._lock:
            loaded, failed = self._loaded(name), self._failed[name]
            states = {v: {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                      for v in loaded}
            states.update({v: {"version": str(v), "state": "END",
                               "status": {"error_code": "UNKNOWN", "error_message": f.error}}
                           for v, f in failed.items()})
        return [states[v] for v in sorted(states, reverse=True)]
