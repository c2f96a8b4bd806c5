#!/usr/bin/env bash
# Deploys one pushed version to a Vertex AI endpoint with Google's prebuilt TensorFlow serving
# container (it runs tensorflow/serving; requests use the same {"instances": [...]} body).
#   serving/deploy/vertex_deploy.sh PROJECT REGION gs://BUCKET/rankloss/serving/rankloss-tfx/VERSION
# Then: gcloud ai endpoints predict ENDPOINT_ID --region REGION --json-request request.json
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 PROJECT REGION GCS_VERSION_DIR (a numbered directory the Pusher wrote)" >&2
  exit 2
fi
project="$1" region="$2" artifact_uri="$3"
image="us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-16:latest"

model_id="$(gcloud ai models upload --project "$project" --region "$region" \
  --display-name rankloss --container-image-uri "$image" --artifact-uri "$artifact_uri" \
  --format 'value(model)')"
endpoint_id="$(gcloud ai endpoints create --project "$project" --region "$region" \
  --display-name rankloss --format 'value(name)')"
gcloud ai endpoints deploy-model "$endpoint_id" --project "$project" --region "$region" \
  --model "$model_id" --display-name rankloss --machine-type n1-standard-4 \
  --min-replica-count 1 --max-replica-count 4
echo "deployed model $model_id to endpoint $endpoint_id"
