# The pipeline image for Kubeflow Pipelines V2 / Vertex AI (see BUILD.md).
FROM python:3.10-slim

WORKDIR /pipeline
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY settings/ settings/
COPY transforms/ transforms/
COPY ingestion/ ingestion/
COPY trainer/ trainer/
COPY serving/ serving/
COPY pipeline/ pipeline/

# TFRS needs Keras 2 in every component process; the code imports from /pipeline.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/pipeline
