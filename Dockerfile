# The suite's container: what a scheduled game day runs in-cluster
# (deploy/gameday/cronjob.yaml). Build: docker build -t ghcr.io/harmonyflow/resilience:0.1.0 .
# No credential is baked in: the cluster's comes from the pod's ServiceAccount, AWS's
# from IRSA, notification URLs from an optional Secret (see deploy/gameday/).

# Pinned: the exact Python and Debian release, never a floating tag.
FROM python:3.11.11-slim-bookworm

# kubectl renders deploy/base into the intended policy (`kubectl kustomize`);
# verified against the checksum published beside it.
ARG KUBECTL_VERSION=v1.31.4
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && curl -fsSLo /usr/local/bin/kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" \
    && echo "$(curl -fsSL "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl.sha256")  /usr/local/bin/kubectl" | sha256sum --check \
    && chmod 0755 /usr/local/bin/kubectl \
    && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 gameday && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home gameday

WORKDIR /app
# The same lock file CI installs (make setup): exact versions, checked against their hashes.
COPY requirements ./requirements
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/lock.txt && pip check
COPY pyproject.toml README.md ./
COPY resilience ./resilience
COPY sandbox ./sandbox
# data the sandbox reads: Chaos Mesh's CRDs, upstream's protobuf definitions
COPY schemas ./schemas
COPY experiments ./experiments
COPY loadtests ./loadtests
COPY deploy ./deploy
# editable: the suite finds experiments/, loadtests/ and deploy/ beside its package
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && python -m compileall -q resilience loadtests

ENV HOME=/tmp PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["resilience"]
CMD ["gameday", "--plain"]
