"""The settings of the Kubeflow V2 / Vertex AI compile (pipeline/kubeflow_v2_runner.py): a section of
`PipelineConfig` that only that entry point's flags set."""
import dataclasses
from typing import List, Optional

from settings.fields import NON_NEGATIVE, POSITIVE, setting


@dataclasses.dataclass
class VertexConfig:
    """What the Kubeflow V2 / Vertex AI compile needs (pipeline/kubeflow_v2_runner.py): where the pipeline and
    the Trainer run, each step's resources, and what sizes the Dataflow workers (pipeline/cloud_checks.py)."""
    project: str = setting("", "Google Cloud project the pipeline and its training job run in", flag="--vertex-project")
    region: str = setting("", "Vertex AI region, e.g. us-central1", flag="--vertex-region")
    service_account: str = setting("", "service account of the training job (default: the project's)")
    network: str = setting("", "VPC network of the training job, projects/NUMBER/global/networks/NAME (default: none)",
                           flag="--vertex-network")
    step_cpu: float = setting(4.0, "vCPUs of each pipeline step's container", check=POSITIVE)
    step_memory_gb: float = setting(16.0, "GB of memory of each pipeline step's container", check=POSITIVE)
    training_replicas: int = setting(0, "0: train inside the Trainer's pipeline step; N: a Vertex AI custom job of a "
                                        "chief and N-1 workers (MultiWorkerMirroredStrategy)", check=NON_NEGATIVE)
    parameter_servers: int = setting(0, "parameter servers of the training job: 0, or N to hold the variables (the "
                                        "embedding table) in shards across N servers (ParameterServerStrategy; "
                                        "needs --training-replicas 2 or more: the chief coordinates, workers train)",
                                     check=NON_NEGATIVE)
    machine_type: str = setting("n1-standard-8", "training replicas' machine type", flag="--training-machine-type")
    parameter_server_machine_type: str = setting("n1-highmem-8", "parameter servers' machine type (memory: BUILD.md, "
                                                 "Scaling past one machine)")
    accelerator_type: str = setting("", "GPU of each training replica, e.g. NVIDIA_TESLA_T4 (default: none)",
                                    flag="--training-accelerator")
    accelerator_count: int = setting(1, "GPUs per training replica with --training-accelerator", check=POSITIVE,
                                     flag="--training-accelerator-count")
    vocabulary_tokens: int = setting(30_000_000, "vocabulary tokens every Beam worker process holds (all fields), "
                                     "to size Dataflow workers: an assumption for Criteo_x1 at min count 1; a local "
                                     "run's transform_fn/assets count them", check=POSITIVE)
    mutable_image: bool = setting(False, "--image is a tag meant to be followed, not a digest")

    def job_problems(self, steps_per_epoch: Optional[int], eval_steps: Optional[int]) -> List[str]:
        """What is wrong with the training job these settings describe, given the Trainer's epoch and validation
        lengths in steps; each problem names its flag."""
        problems = []
        if self.training_replicas and not (self.project and self.region):
            problems.append("--training-replicas: a Vertex AI training job needs --vertex-project and --vertex-region")
        if self.parameter_servers and self.training_replicas < 2:
            problems.append("--parameter-servers: the chief coordinates and workers train; add --training-replicas 2 or "
                            "more (the chief and at least one worker)")
        if self.parameter_servers and not (steps_per_epoch and eval_steps):
            problems.append("--parameter-servers: Keras fit under ParameterServerStrategy needs --steps-per-epoch and "
                            "--eval-steps")
        if self.accelerator_type and not self.training_replicas:
            problems.append("--training-accelerator: GPUs go to the training job's replicas; add --training-replicas N")
        return problems
