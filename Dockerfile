# One image for every step on Kubeflow Pipelines V2 / Vertex AI, and the Beam SDK container of the
# Beam steps on Dataflow (see BUILD.md). The Beam version and Python match requirements.txt.
FROM apache/beam_python3.10_sdk:2.59.0 AS beam_sdk

FROM python:3.10-slim

WORKDIR /pipeline
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

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
