# One image for every step on Kubeflow Pipelines V2 / Vertex AI, and the Beam SDK container of the
# Beam steps on Dataflow (BUILD.md). Python, Beam and every package come from requirements.lock, the lock
# scripts/setup_env.sh installs too. Pass the base by digest: --build-arg PYTHON_IMAGE=python:3.10-slim@sha256:...
ARG PYTHON_IMAGE=python:3.10-slim
FROM apache/beam_python3.10_sdk:2.59.0 AS beam_sdk

# Wheels for every locked package, each checked against the lock's hashes. The lock's source-only packages
# (no wheel for CPython 3.10 on manylinux x86-64) are compiled here; every other one must be a wheel:
# tests/test_image.py keeps the --no-binary list complete.
FROM ${PYTHON_IMAGE} AS wheels
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ && rm -rf /var/lib/apt/lists/*
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir "pip==24.2" && \
    pip wheel --no-cache-dir --require-hashes --no-deps --wheel-dir /wheels --only-binary=:all: \
        --no-binary=crcmod,dill,docopt,google-apitools,hdfs,kfp,kfp-server-api,pyfarmhash,pyjsparser,rouge-score \
        -r /tmp/requirements.lock

FROM ${PYTHON_IMAGE}
WORKDIR /pipeline
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl && pip check

# Beam's worker boot program: Dataflow starts SDK containers through it (--sdk_container_image).
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam

COPY settings/ settings/
COPY equations/ equations/
COPY runtime/ runtime/
COPY transforms/ transforms/
COPY ingestion/ ingestion/
COPY trainer/ trainer/
COPY serving/ serving/
COPY components/ components/
COPY pipeline/ pipeline/

# TFRS needs Keras 2 in every component process and Beam worker; the code imports from /pipeline.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/pipeline

# Dataflow runs the boot program; Kubeflow / Vertex give each step its own command, which replaces it.
ENTRYPOINT ["/opt/apache/beam/boot"]
