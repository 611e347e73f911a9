#!/usr/bin/env bash
# The streaming gateway's image for the pipeline (buildspec.yml): built once from gateway/Dockerfile
# and pushed, tagged with the commit, to the gateway repository (meridian-gateway-<stage>, created by
# that stage's containers stack) of every stage named. A stage whose repository does not exist yet
# (its first deploy creates it) gets no image this run and deploys without a gateway service; the
# next run pushes to it. Tags are immutable: an image already pushed for this commit (a re-run) is
# used as it is. Writes $GATEWAY_IMAGES_FILE (default deploy/gateway-images.json), a JSON object
# {stage: image URI} of the stages that have their image.
#
#   gateway/publish_image.sh COMMIT STAGE [STAGE ...]
#
# Needs AWS_REGION (CodeBuild sets it), the aws CLI and a Docker daemon (the build project runs
# privileged for it). Exit 2 for bad arguments.
set -euo pipefail

if [[ $# -lt 2 || ! "$1" =~ ^[0-9a-zA-Z._-]{1,128}$ ]]; then
    echo "usage: $0 COMMIT STAGE [STAGE ...]  (COMMIT: a tag, [0-9a-zA-Z._-], at most 128)" >&2
    exit 2
fi
tag="$1"
shift
region="${AWS_REGION:?AWS_REGION is not set}"
out="${GATEWAY_IMAGES_FILE:-deploy/gateway-images.json}"
account="$(aws sts get-caller-identity --query Account --output text)"
registry="${account}.dkr.ecr.${region}.amazonaws.com"

targets=()
for stage in "$@"; do
    if aws ecr describe-repositories --region "$region" --repository-names "meridian-gateway-${stage}" \
        >/dev/null 2>&1; then
        targets+=("$stage")
    else
        echo "gateway image: no repository meridian-gateway-${stage} yet; ${stage} deploys without the gateway service" >&2
    fi
done

built=""
entries=()
for stage in "${targets[@]}"; do
    image="${registry}/meridian-gateway-${stage}:${tag}"
    if aws ecr describe-images --region "$region" --repository-name "meridian-gateway-${stage}" \
        --image-ids "imageTag=${tag}" >/dev/null 2>&1; then
        echo "gateway image: ${image} exists (tags are immutable); using it" >&2
    else
        if [[ -z "$built" ]]; then
            aws ecr get-login-password --region "$region" |
                docker login --username AWS --password-stdin "$registry"
            docker build --pull -f gateway/Dockerfile -t "meridian-gateway:${tag}" .
            built=1
        fi
        docker tag "meridian-gateway:${tag}" "$image"
        docker push "$image"
    fi
    entries+=("\"${stage}\": \"${image}\"")
done

mkdir -p "$(dirname "$out")"
joined=""
for entry in "${entries[@]}"; do
    joined="${joined:+${joined}, }${entry}"
done
printf '{%s}\n' "$joined" >"$out"
