#!/bin/sh
# The scheduled game day's entry point: a kubeconfig for this pod's ServiceAccount
# (its token is read from the projected file at every request, never copied), then
# `resilience gameday` for the plan. `exec` so that SIGTERM from Kubernetes reaches
# the game day, which rolls back and still writes its report.
set -eu
sa=/var/run/secrets/kubernetes.io/serviceaccount
export KUBECONFIG=/tmp/kubeconfig
cat > "$KUBECONFIG" <<CONFIG
apiVersion: v1
kind: Config
clusters:
  - name: in-cluster
    cluster:
      server: https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}
      certificate-authority: ${sa}/ca.crt
users:
  - name: gameday-runner
    user:
      tokenFile: ${sa}/token
contexts:
  - name: in-cluster
    context: {cluster: in-cluster, user: gameday-runner, namespace: harmonyflow}
current-context: in-cluster
CONFIG
exec resilience gameday --plain --kube-context in-cluster --plan "${PLAN}" --reports-dir /reports "$@"
