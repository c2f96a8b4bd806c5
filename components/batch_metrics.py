"""The Evaluator's metrics, each TFMA batch reduced with numpy in one `add_input` call.

TFMA's own metrics take one example per `add_input`, after its unbatch extractor has split every
record batch into per-example extracts, in Python. `components.evaluator.custom_extractors` keeps the extracts
batched, and these metrics sum each batch, for each model (candidate, baseline), into `BatchSums`:

    per prediction bucket b (TFMA's: 10,000 equal-width buckets on [0, 1], one more either side),
    n_b = Σ w,  y_b = Σ w·y,  p_b = Σ w·p;   and  L₁ = Σ w·y·log p,  L₀ = Σ w·(1 - y)·log(1 - p),

with w the example weight (1 unless the metric is example-weighted) and p clipped to [1e-7, 1 - 1e-7]
in the logs, as Keras's cross-entropy clips it. Each metric below derives from those sums alone.
"""
import dataclasses
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import metrics_for_slice_pb2

from equations import weighted_bce as weighted_bce_lib

NUM_BUCKETS = 10_000  # TFMA's calibration histogram's
PLOT_BUCKETS = 1_000  # TFMA's calibration plot's
_EPSILON = 1e-7
_SUMS_NAME = "_batch_sums"


@dataclasses.dataclass
class BatchSums:
    """A model's sums over the examples seen; `weights`, `labels` and `predictions` are per bucket."""
    examples: int
    weights: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    log_p_positives: float
    log_q_negatives: float

    @classmethod
    def empty(cls) -> "BatchSums":
        return cls(0, *(np.zeros(NUM_BUCKETS + 2) for _ in range(3)), 0.0, 0.0)

    def add(self, other: "BatchSums") -> "BatchSums":
        self.examples += other.examples
        self.weights += other.weights
        self.labels += other.labels
        self.predictions += other.predictions
        self.log_p_positives += other.log_p_positives
        self.log_q_negatives += other.log_q_negatives
        return self


def bucket_of(predictions: np.ndarray) -> np.ndarray:
    """TFMA's calibration-histogram bucket: 0 below 0, 1 + ⌊p·10,000⌋ on [0, 1), 10,001 from 1 up."""
    return np.clip(np.floor(predictions * NUM_BUCKETS) + 1, 0, NUM_BUCKETS + 1).astype(np.int64)


def batch_sums(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> BatchSums:
    """The sums of one batch of binary labels (in [0, 1]), predicted probabilities and example weights."""
    outside = labels[~((labels >= 0) & (labels <= 1))]
    if outside.size:
        raise ValueError(f"batch metrics: labels must lie in [0, 1] (a click or not); {outside.size} do not, "
                         f"such as {outside[:3].tolist()}")
    if np.isnan(predictions).any():
        raise ValueError(f"batch metrics: {np.isnan(predictions).sum()} of {predictions.size} predictions are NaN")
    buckets = bucket_of(predictions)
    p = np.clip(predictions, _EPSILON, 1 - _EPSILON)

    def per_bucket(values: np.ndarray) -> np.ndarray:
        return np.bincount(buckets, values, minlength=NUM_BUCKETS + 2)

    return BatchSums(examples=labels.size, weights=per_bucket(weights), labels=per_bucket(weights * labels),
                     predictions=per_bucket(weights * predictions),
                     log_p_positives=float(np.sum(weights * labels * np.log(p))),
                     log_q_negatives=float(np.sum(weights * (1 - labels) * np.log1p(-p))))


def _flat(value: Any, what: str, key: metric_types.MetricKey) -> np.ndarray:
    """A batch's values, one per example; a variable-length feature (a label) must have one per example."""
    if value is None:
        raise ValueError(f"batch metrics for model {key.model_name!r}: the examples have no {what}")
    if isinstance(value, types.VarLenTensorValue):
        rows = value.dense_shape[0]
        if value.values.size != rows or not np.array_equal(value.indices[:, 0], np.arange(rows)):
            raise ValueError(f"batch metrics for model {key.model_name!r}: every example needs exactly one "
                             f"{what}; {rows} examples have {value.values.size}")
        value = value.values
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _of_model(value: Any, key: metric_types.MetricKey) -> Any:
    """`value` for the key's model and output, where the extract holds one per model (or output)."""
    for name in (key.model_name, key.output_name):
        if name and isinstance(value, Mapping) and name in value:
            value = value[name]
    if isinstance(value, Mapping):
        raise ValueError(f"batch metrics for model {key.model_name!r}, output {key.output_name!r}: "
                         f"the extract holds one value per key of {sorted(value)}; name the one to evaluate")
    return value


class _BatchSumsCombiner(beam.CombineFn):
    """Sums a model's labels, predictions and weights, a TFMA batch at a time."""

    def __init__(self, key: metric_types.MetricKey):
        self._key = key

    def create_accumulator(self) -> BatchSums:
        return BatchSums.empty()

    def add_input(self, accumulator: BatchSums, element: metric_types.StandardMetricInputs) -> BatchSums:
        key = self._key
        labels = _flat(_of_model(element.label, key), "label", key)
        predictions = _flat(_of_model(element.prediction, key), "prediction", key)
        weight = _of_model(element.example_weight, key) if key.example_weighted else None
        weights = _flat(1.0 if weight is None else weight, "example weight", key)
        if labels.size != predictions.size or weights.size not in (1, labels.size):
            raise ValueError(f"batch metrics need one label, one prediction and one weight per example: "
                             f"got {labels.size} labels, {predictions.size} predictions, {weights.size} weights "
                             f"(model {key.model_name!r}, output {key.output_name!r})")
        return accumulator.add(batch_sums(labels, predictions, np.broadcast_to(weights, labels.shape)))

    def merge_accumulators(self, accumulators: Iterable[BatchSums]) -> BatchSums:
        accumulators = iter(accumulators)
        total = next(accumulators)
        for accumulator in accumulators:
            total.add(accumulator)
        return total

    def extract_output(self, accumulator: BatchSums) -> Dict[metric_types.MetricKey, BatchSums]:
        return {self._key: accumulator}


def _derived(value_of: Callable[..., Any], plot: bool):
    """The function building a metric's computations: the shared sums, and `value_of(sums, **params)`."""

    def computations(name: str, model_name: str = "", output_name: str = "",
                     sub_key: Optional[metric_types.SubKey] = None, aggregation_type: Any = None,
                     class_weights: Optional[Dict[int, float]] = None, example_weighted: bool = False,
                     **params) -> metric_types.MetricComputations:
        if sub_key or aggregation_type or class_weights:
            raise ValueError(f"batch metric {name!r}: binary labels only, with no sub keys, class weights or "
                             f"aggregation (got sub_key={sub_key}, aggregation_type={aggregation_type}, "
                             f"class_weights={class_weights})")
        sums_key = metric_types.MetricKey(name=_SUMS_NAME, model_name=model_name, output_name=output_name,
                                          example_weighted=example_weighted)
        key = (metric_types.PlotKey if plot else metric_types.MetricKey)(
            name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted)
        return [metric_types.MetricComputation(keys=[sums_key], preprocessors=None,
                                               combiner=_BatchSumsCombiner(sums_key)),
                metric_types.DerivedMetricComputation(
                    keys=[key], result=lambda metrics: {key: value_of(metrics[sums_key], **params)})]

    return metric_util.merge_per_key_computations(computations)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def auc(sums: BatchSums) -> float:
    """ROC AUC, the Mann-Whitney statistic over the buckets, a positive-negative pair in one bucket
    counting half: Σ_b y_b·(N_<b + ½·(n_b - y_b)) / (P·N), with N_<b the negatives' weight below b."""
    negatives = sums.weights - sums.labels
    below = np.cumsum(negatives) - negatives
    return _ratio(float(np.sum(sums.labels * (below + negatives / 2))),
                  float(sums.labels.sum() * negatives.sum()))


def calibration_plot(sums: BatchSums, buckets: int = PLOT_BUCKETS) -> metrics_for_slice_pb2.CalibrationHistogramBuckets:
    """TFMA's calibration plot: [-inf, 0), `buckets` equal widths on [0, 1), [1, inf), each with its weight,
    weighted label and weighted prediction sums."""
    merge = NUM_BUCKETS // buckets
    edges = [-np.inf] + [i / buckets for i in range(buckets + 1)] + [np.inf]

    def merged(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values[:1], values[1:-1].reshape(buckets, merge).sum(axis=1), values[-1:]])

    plot = metrics_for_slice_pb2.CalibrationHistogramBuckets()
    for i, (n, y, p) in enumerate(zip(merged(sums.weights), merged(sums.labels), merged(sums.predictions))):
        bucket = plot.buckets.add(lower_threshold_inclusive=edges[i], upper_threshold_exclusive=edges[i + 1])
        bucket.num_weighted_examples.value, bucket.total_weighted_label.value = n, y
        bucket.total_weighted_refined_prediction.value = p
    return plot


class _BatchMetric(metric_types.Metric):
    """A metric derived from `BatchSums`: subclasses give its `NAME` and its `value(sums, **params)`."""
    NAME: str
    PLOT = False

    def __init__(self, name: str = "", **params):
        super().__init__(_derived(self.value, self.PLOT), name=name or self.NAME, **params)  # pylint: disable=no-member


def weighted_bce(sums: BatchSums, beta_pos: float = 1.0) -> float:
    """The paper's β_pos-weighted BCE (Eq. 15) from the cross-entropy summed by label, -L₁ and -L₀:
    (β_pos·(-L₁) + (-L₀)) / Σ w; the logloss at β_pos = 1."""
    by_label = weighted_bce_lib.weighted_terms(np.array([1.0, 0.0]),
                                               -np.array([sums.log_p_positives, sums.log_q_negatives]), beta_pos)
    return _ratio(float(by_label.sum()), sums.weights.sum())


def mean_label(sums: BatchSums) -> float:
    """Σ w·y / Σ w."""
    return _ratio(sums.labels.sum(), sums.weights.sum())


def mean_prediction(sums: BatchSums) -> float:
    """Σ w·p / Σ w."""
    return _ratio(sums.predictions.sum(), sums.weights.sum())


def calibration(sums: BatchSums) -> float:
    """Σ w·p / Σ w·y: the mean prediction over the observed CTR (1 is calibrated)."""
    return _ratio(sums.predictions.sum(), sums.labels.sum())


def example_count(sums: BatchSums) -> float:
    """The number of examples (unweighted)."""
    return float(sums.examples)


def _batch_metric(class_name: str, name: str, value_of: Callable[[BatchSums], Any], plot: bool = False) -> type:
    """The TFMA metric class `class_name`, computing the metric (or plot) `name` as `value_of(sums)`."""
    return type(class_name, (_BatchMetric,), {"__module__": __name__, "__doc__": f"`{name}`: {value_of.__doc__}",
                                              "NAME": name, "PLOT": plot, "value": staticmethod(value_of)})


BatchExampleCount = _batch_metric("BatchExampleCount", "example_count", example_count)
BatchAUC = _batch_metric("BatchAUC", "auc", auc)
BatchLogLoss = _batch_metric("BatchLogLoss", "logloss", weighted_bce)
BatchMeanLabel = _batch_metric("BatchMeanLabel", "mean_label", mean_label)
BatchMeanPrediction = _batch_metric("BatchMeanPrediction", "mean_prediction", mean_prediction)
BatchCalibration = _batch_metric("BatchCalibration", "calibration", calibration)
BatchCalibrationPlot = _batch_metric("BatchCalibrationPlot", "calibration_plot", calibration_plot, plot=True)


class BatchWeightedBCE(_BatchMetric):
    """`weighted_bce`: Eq. 15's β_pos-weighted BCE."""
    NAME = "weighted_bce"
    value = staticmethod(weighted_bce)

    def __init__(self, name: str = "", beta_pos: float = 1.0):
        if not beta_pos > 0:
            raise ValueError(f"BatchWeightedBCE: beta_pos must be > 0, got {beta_pos}")
        super().__init__(name, beta_pos=beta_pos)
