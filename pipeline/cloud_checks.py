"""What Dataflow and Vertex AI would refuse at run time, refused when the pipeline is compiled, naming the flag.

Dataflow: a Beam step with `--runner=DataflowRunner` needs `--project`, `--region`, a `gs://` `--temp_location`
and a worker machine (`--machine_type`) whose memory holds one SDK process per vCPU, each with every
vocabulary of the Transform output loaded (`apply_vocabulary`'s lookup tables):

    memory needed = vCPUs × (PROCESS_GB + vocabulary tokens × BYTES_PER_TOKEN)

`PROCESS_GB` is a Python SDK process with TensorFlow, tf.Transform and TFDV imported; `BYTES_PER_TOKEN`
a vocabulary entry in a TensorFlow hash table (the token, its int64 id and the table's overhead). Both are
stated assumptions, not measurements on Dataflow. The token count is `--vocabulary-tokens`: the sum over
the 26 fields of the tokens the vocabularies keep (a local run's Transform output gives it:
`transform_fn/assets/*`, one line per token).

Vertex AI: a pipeline compiled for a `gs://` root needs a project and a region, and its image by digest
(`@sha256:...`) unless `--mutable-image` says a tag is meant: a tag can move between the compile and the run.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

PROCESS_GB = 2.0
BYTES_PER_TOKEN = 100
DATAFLOW_RUNNERS = ("dataflow", "dataflowrunner")
# GB of memory per vCPU of Compute Engine's predefined machine families (cloud.google.com/compute/docs).
_GB_PER_CPU: Dict[Tuple[str, str], float] = {
    ("n1", "standard"): 3.75, ("n1", "highmem"): 6.5, ("n1", "highcpu"): 0.9,
    ("n2", "standard"): 4.0, ("n2", "highmem"): 8.0, ("n2", "highcpu"): 1.0,
    ("n2d", "standard"): 4.0, ("n2d", "highmem"): 8.0, ("n2d", "highcpu"): 1.0,
    ("e2", "standard"): 4.0, ("e2", "highmem"): 8.0, ("e2", "highcpu"): 1.0,
    ("c2", "standard"): 4.0, ("c2d", "standard"): 4.0, ("c2d", "highmem"): 8.0, ("c2d", "highcpu"): 2.0,
    ("m1", "megamem"): 14.9, ("m1", "ultramem"): 24.0,
}


def flag_value(args: Sequence[str], name: str) -> Optional[str]:
    """The value of `--name=value` or `--name value` in Beam arguments (the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
    return value


def machine_memory(machine_type: str) -> Tuple[int, float]:
    """(vCPUs, GB of memory) of a Compute Engine machine type: predefined (`n1-highmem-8`) or custom
    (`custom-8-53248`, `n2-custom-8-65536`, memory in MB); raises naming an unknown one."""
    custom = re.fullmatch(r"(?:[a-z0-9]+-)?custom-(\d+)-(\d+)(?:-ext)?", machine_type)
    if custom:
        return int(custom.group(1)), int(custom.group(2)) / 1024
    predefined = re.fullmatch(r"([a-z0-9]+)-([a-z]+)-(\d+)", machine_type)
    if not predefined or (predefined.group(1), predefined.group(2)) not in _GB_PER_CPU:
        raise ValueError(f"--machine_type={machine_type}: not a machine type this check knows (families "
                         f"{sorted({f'{a}-{b}' for a, b in _GB_PER_CPU})}, or custom-CPUS-MB)")
    cpus = int(predefined.group(3))
    return cpus, cpus * _GB_PER_CPU[(predefined.group(1), predefined.group(2))]


def needed_worker_gb(cpus: int, vocabulary_tokens: int) -> float:
    return cpus * (PROCESS_GB + vocabulary_tokens * BYTES_PER_TOKEN / 1e9)


def dataflow_problems(beam_args: Sequence[str], vocabulary_tokens: int) -> List[str]:
    """What a Dataflow job with `beam_args` would fail on, one message per missing or wrong flag; [] when the
    arguments choose another runner."""
    if (flag_value(beam_args, "runner") or "").lower() not in DATAFLOW_RUNNERS:
        return []
    problems = [f"--{name}: a Dataflow job needs {what}" for name, what in (
        ("project", "the Google Cloud project it runs in"), ("region", "the region its workers run in"))
        if not flag_value(beam_args, name)]
    temp = flag_value(beam_args, "temp_location")
    if not (temp or "").startswith("gs://"):
        problems.append(f"--temp_location: a Dataflow job needs a gs:// folder for its temporary files, got {temp!r}")
    machine = flag_value(beam_args, "machine_type") or flag_value(beam_args, "worker_machine_type")
    if not machine:
        problems.append("--machine_type: a Dataflow job needs its workers' machine type named: Dataflow's default is "
                        f"too small for {vocabulary_tokens:,} vocabulary tokens in every process "
                        "(pipeline/cloud_checks.py)")
        return problems
    try:
        cpus, memory = machine_memory(machine)
    except ValueError as error:
        return problems + [str(error)]
    needed = needed_worker_gb(cpus, vocabulary_tokens)
    if needed > memory:
        problems.append(f"--machine_type={machine}: {memory:.1f} GB for {cpus} SDK processes, each holding "
                        f"{vocabulary_tokens:,} vocabulary tokens, needs about {needed:.1f} GB "
                        f"({cpus} × ({PROCESS_GB:g} GB + tokens × {BYTES_PER_TOKEN} B)): take a highmem type "
                        "or fewer vCPUs (--vocabulary-tokens sets the count)")
    return problems


def vertex_problems(output_root: str, project: str, region: str, image: str, mutable_image: bool) -> List[str]:
    """What a Vertex AI pipeline compiled with these settings would lack."""
    if not output_root.startswith("gs://"):
        return []
    problems = [f"{flag}: a Vertex AI pipeline needs {what}" for flag, value, what in (
        ("--vertex-project", project, "the Google Cloud project it runs in"),
        ("--vertex-region", region, "the Vertex AI region it runs in")) if not value]
    if "@sha256:" not in image and not mutable_image:
        problems.append(f"--image {image}: a tag can point at another image by the time the pipeline runs; give "
                        "the image by digest (REPO/IMAGE@sha256:...) or pass --mutable-image to mean the tag")
    return problems
