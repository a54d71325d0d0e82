/** One line each for `embedctl --help`, in the order of a migration. */
export const SUMMARIES: Record<string, string> = {
  rehearse: 'the whole migration, end to end, on this machine and offline: cost, render, serve, verify, load-test, five-week rollout, fault and rollback',
  'cost-report': 'Whether self-hosting pays for your workload: monthly cost by volume, break-even, triggers and a recommendation',
  models: 'list the model bundles embedctl can serve, fetch ONNX models from the Hugging Face hub',
  serve: 'run the embedding server (OpenAI- and Jina-compatible /v1/embeddings) on this machine',
  render: 'Write the deploy files: docker-compose.yml, nginx.conf (traffic split + fallback), k8s/, user-data.sh',
  provision: 'Launch a GPU instance on EC2 for the runtime (Deep Learning AMI, locked-down security group, alarms)',
  up: 'Start the self-hosted runtimes: on this machine behind nginx (--local) or on a Docker engine (--docker-host)',
  down: 'Stop what `up` started: the local runtimes and nginx (--local) or the runtime containers (--docker-host)',
  status: "Show the instance, each backend's health, the traffic split and recent latency and errors",
  teardown: 'Remove what provision created: only resources listed in .embedctl/state.json whose tags confirm embedctl manages them',
  'verify-consistency': 'Embed the same texts on two endpoints and compare per-text cosine: does the candidate answer like the reference?',
  'rag-overlap': 'Retrieve with both endpoints over the same corpus and compare the top-k lists (and quality against qrels)',
  'load-test': 'Load-test an embeddings endpoint (k6 when on PATH, else autocannon) and judge it against the gates and the migration criteria',
  rollout: 'Move traffic to self-hosted step by step (10 -> 25 -> 50 -> 75 -> 100 %), behind gates, with rollback',
};
