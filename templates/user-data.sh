#!/bin/bash
# Rendered by embedctl from templates/user-data.sh: cloud-init for the GPU instance.
# First boot, as root. Secrets are read from SSM at boot, never written here (user data is readable).
set -euo pipefail
exec >>/var/log/embedctl-user-data.log 2>&1
echo "embedctl user-data: start $(date -Is)"

IMAGE={{image}}
MODEL={{model}}
HUB_MODEL={{hubModel}}
FETCH_OPTIMIZE={{fetchOptimize}}
HOSTED_KEY_PARAMETER={{hostedKeyParameter}}
GATEWAY_KEYS_PARAMETER={{gatewayKeysParameter}}
HF_TOKEN_PARAMETER={{hfTokenParameter}}
GATEWAY_PORT={{gatewayPort}}
DEPLOY_DIR=/opt/embedctl/deploy
MODELS_DIR=/opt/embedctl/models
METRICS_DIR=/var/log/embedctl
export DEBIAN_FRONTEND=noninteractive

imds() {
  local token
  token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -fsS -H "X-aws-ec2-metadata-token: ${token}" "http://169.254.169.254/latest/$1"
}
REGION=$(imds meta-data/placement/region)
export AWS_DEFAULT_REGION="${REGION}"
# Metrics' Deployment dimension: the --name tag.
DEPLOYMENT=$(imds meta-data/tags/instance/embedctl:deployment || true)
[[ "${DEPLOYMENT}" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ ]] || DEPLOYMENT=main

retry() {
  local n=0
  until "$@"; do
    n=$((n + 1))
    if [ "${n}" -ge 5 ]; then return 1; fi
    sleep $((n * 5))
  done
}

# 1) Docker + the NVIDIA container toolkit (the DLAMI has both; installed if absent).
if ! command -v docker >/dev/null 2>&1; then
  retry apt-get update -q
  retry apt-get install -y -q docker.io docker-compose-v2
  systemctl enable --now docker
fi
if ! docker compose version >/dev/null 2>&1; then
  retry apt-get install -y -q docker-compose-v2
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  retry apt-get update -q
  retry apt-get install -y -q nvidia-container-toolkit
fi
nvidia-ctk runtime configure --runtime=docker
systemctl restart docker
nvidia-smi || echo "embedctl user-data: warning: nvidia-smi failed; runtimes will fall back to CPU"
if ! command -v aws >/dev/null 2>&1; then
  retry apt-get install -y -q awscli
fi

ssm_secret() {
  aws ssm get-parameter --with-decryption --name "$1" --query Parameter.Value --output text
}

# 2) Model: built-ins ship in the image; hub models are fetched once to disk and optimised for
# this hardware (models fetch --optimize: fp16 + pooling in the graph on GPUs, int8 on CPU), gated
# on cosine vs the download: a failed gate stops the boot here.
install -d -m 0755 "${MODELS_DIR}" "${DEPLOY_DIR}" "${DEPLOY_DIR}/nginx/templates" "${METRICS_DIR}"
chown 10001:10001 "${METRICS_DIR}" # the runtime's user
# Writers keep their files open (nginx, EMF): copytruncate; --gateway-log follows truncation.
printf '%s/*.log {\n daily\n rotate 3\n maxsize 200M\n copytruncate\n compress\n missingok\n}\n' "${METRICS_DIR}" >/etc/logrotate.d/embedctl
retry docker pull "${IMAGE}"
if [ "${HUB_MODEL}" = "true" ]; then
  HF_TOKEN=""
  if [ -n "${HF_TOKEN_PARAMETER}" ] && ! HF_TOKEN=$(ssm_secret "${HF_TOKEN_PARAMETER}"); then
    echo "embedctl user-data: cannot read HF_TOKEN from SSM parameter ${HF_TOKEN_PARAMETER}" >&2
    exit 1
  fi
  # "-e HF_TOKEN" without a value passes it from the environment, out of sight of ps.
  export HF_TOKEN
  retry docker run --rm --user 0 --entrypoint node -e HF_TOKEN -e EMBEDCTL_MODELS_DIR=/models \
    -v "${MODELS_DIR}:/models" "${IMAGE}" --input-type=module -e {{{fetchScriptShell}}} "${MODEL}" --optimize "${FETCH_OPTIMIZE}"
  unset HF_TOKEN
fi

# 3) The deploy files `embedctl render` writes.
# compose and nginx.conf travel gzipped (base64) to fit EC2's 16 KB; deploy/ has readable copies.
base64 -d <<'EMBEDCTL_COMPOSE_EOF' | gunzip > "${DEPLOY_DIR}/docker-compose.yml"
{{{composeGzip}}}
EMBEDCTL_COMPOSE_EOF
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
{{{nginxConfGzip}}}
EMBEDCTL_NGINX_EOF
cat > "${DEPLOY_DIR}/nginx/templates/hosted-auth.conf.template" <<'EMBEDCTL_AUTH_EOF'
{{{hostedAuthTemplate}}}
EMBEDCTL_AUTH_EOF
cat > "${DEPLOY_DIR}/prometheus.yml" <<'EMBEDCTL_PROM_EOF'
{{{prometheusYml}}}
EMBEDCTL_PROM_EOF
# The instance role needs ssm:GetParameter (+ kms:Decrypt for a customer key).
if ! HOSTED_KEY=$(ssm_secret "${HOSTED_KEY_PARAMETER}"); then
  echo "embedctl user-data: cannot read the hosted API key from SSM parameter ${HOSTED_KEY_PARAMETER};" \
    "create it (aws ssm put-parameter --type SecureString --name ${HOSTED_KEY_PARAMETER} --value ...), then replace this instance (user data runs at its first boot only)" >&2
  exit 1
fi
umask 077
printf 'EMBEDCTL_HOSTED_API_KEY=%s\nEMBEDCTL_DEPLOYMENT=%s\n' "${HOSTED_KEY}" "${DEPLOYMENT}" > "${DEPLOY_DIR}/.env"
unset HOSTED_KEY
# Gateway keys: only callers with one reach either side. The image's own parser (the one
# provision checked the parameter with) writes nginx's key map, named callers and limits; a
# malformed line stops the boot. Run again at every boot and, with --reload, by provision over
# SSM when the keys rotate.
cat > "${DEPLOY_DIR}/gateway-keys.sh" <<EMBEDCTL_KEYS_VARS_EOF
#!/bin/bash
# embedctl: the gateway keys from SSM into nginx's key files (--reload: the running gateway too).
set -euo pipefail
export AWS_DEFAULT_REGION=${REGION}
PARAMETER=${GATEWAY_KEYS_PARAMETER}
IMAGE=${IMAGE}
DEPLOY_DIR=${DEPLOY_DIR}
EMBEDCTL_KEYS_VARS_EOF
cat >> "${DEPLOY_DIR}/gateway-keys.sh" <<'EMBEDCTL_KEYS_EOF'
install -d -m 0700 "${DEPLOY_DIR}/nginx/keys"
if ! KEYS=$(aws ssm get-parameter --with-decryption --name "${PARAMETER}" --query Parameter.Value --output text); then
  echo "embedctl gateway-keys: cannot read the gateway keys from SSM parameter ${PARAMETER};" \
    "create it (lines \"client <key>\" and \"operator <key>\")" >&2
  exit 1
fi
if ! printf '%s\n' "${KEYS}" | docker run --rm -i --network none --user 0 --entrypoint node \
    -v "${DEPLOY_DIR}/nginx/keys:/keys" "${IMAGE}" --input-type=module -e {{{gatewayKeysScriptShell}}}; then
  echo "embedctl gateway-keys: SSM parameter ${PARAMETER} must hold lines \"client|operator <key> [name=<caller>] [rpm=<n>] [burst=<n>]\" (keys of 16+ characters); the line above says which is wrong" >&2
  exit 1
fi
unset KEYS
if [ "${1:-}" = --reload ]; then
  cd "${DEPLOY_DIR}"
  if [ -z "$(docker compose ps --status running --quiet gateway)" ]; then
    echo "embedctl gateway-keys: keys written; the gateway is not running (it reads them when it starts)"
    exit 0
  fi
  # nginx -t first: a refused config keeps the running one and fails here.
  # -p/-c as compose starts it: the pid file is relative to -p.
  N="-p /var/cache/nginx/ -c /etc/nginx/nginx.conf"
  docker compose exec -T gateway nginx -t -q $N
  docker compose exec -T gateway nginx -s reload $N
  echo "embedctl gateway-keys: the gateway reloaded with the keys of ${PARAMETER}"
fi
EMBEDCTL_KEYS_EOF
chmod 0700 "${DEPLOY_DIR}/gateway-keys.sh"
install -d /var/lib/cloud/scripts/per-boot
# Per boot, once docker is up (2 minutes at most).
printf '#!/bin/bash\nfor _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 2; done\nexec %s --reload\n' "${DEPLOY_DIR}/gateway-keys.sh" > /var/lib/cloud/scripts/per-boot/embedctl-gateway-keys.sh
chmod 0700 /var/lib/cloud/scripts/per-boot/embedctl-gateway-keys.sh
if ! "${DEPLOY_DIR}/gateway-keys.sh"; then
  echo "embedctl user-data: the gateway keys (SSM parameter ${GATEWAY_KEYS_PARAMETER}) are missing or malformed; fix the parameter and provision again" >&2
  exit 1
fi
umask 022
{{#letsencrypt}}

# HTTPS certificate from Let's Encrypt (HTTP-01 on port 80, open to the internet while it is
# issued and renewed); certbot's timer renews it and the hook reloads nginx without dropping
# connections.
retry apt-get install -y -q certbot
retry certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m {{email}} -d {{domain}}
install -d /etc/letsencrypt/renewal-hooks/deploy
cat > /etc/letsencrypt/renewal-hooks/deploy/embedctl-nginx-reload.sh <<'EMBEDCTL_HOOK_EOF'
#!/bin/sh
cd /opt/embedctl/deploy && docker compose exec -T gateway nginx -s reload -p /var/cache/nginx/ -c /etc/nginx/nginx.conf
EMBEDCTL_HOOK_EOF
chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/embedctl-nginx-reload.sh
systemctl enable --now certbot.timer || echo "embedctl user-data: warning: no certbot.timer; renew with cron" >&2
{{/letsencrypt}}

# 4) Start; restart: unless-stopped survives reboots.
cd "${DEPLOY_DIR}"
retry docker compose {{{composeProfiles}}}up -d

# 5) CloudWatch agent: host/GPU metrics, this log, EMF lines, container logs.
if [ ! -x /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl ]; then
  ARCH=$(dpkg --print-architecture)
  retry curl -fsSL -o /tmp/amazon-cloudwatch-agent.deb "https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/${ARCH}/latest/amazon-cloudwatch-agent.deb"
  dpkg -i -E /tmp/amazon-cloudwatch-agent.deb
fi
cat > /opt/aws/amazon-cloudwatch-agent/etc/embedctl.json <<'EMBEDCTL_CWAGENT_EOF'
{
  "agent": {"metrics_collection_interval": 60, "run_as_user": "root"},
  "metrics": {"namespace": "Embedctl", "append_dimensions": {"InstanceId": "${aws:InstanceId}", "AutoScalingGroupName": "${aws:AutoScalingGroupName}"}, "aggregation_dimensions": [["InstanceId"], ["AutoScalingGroupName"]], "metrics_collected": {"cpu": {"measurement": ["cpu_usage_active"], "totalcpu": true}, "mem": {"measurement": ["mem_used_percent"]}, "disk": {"measurement": ["used_percent"], "resources": ["/"]}, "nvidia_gpu": {"measurement": ["utilization_gpu", "utilization_memory", "memory_used", "memory_total", "temperature_gpu", "power_draw"]}}},
  "logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/var/log/embedctl-user-data.log", "log_group_name": "/embedctl/user-data", "log_stream_name": "{instance_id}"}, {"file_path": "/var/log/embedctl/*.emf.log", "log_group_name": "/embedctl/DEPLOYMENT_NAME/metrics", "log_stream_name": "{instance_id}", "retention_in_days": 14}, {"file_path": "/var/lib/docker/containers/*/*-json.log", "log_group_name": "/embedctl/DEPLOYMENT_NAME/containers", "log_stream_name": "{instance_id}", "retention_in_days": 14}]}}}
}
EMBEDCTL_CWAGENT_EOF
sed -i "s#DEPLOYMENT_NAME#${DEPLOYMENT}#g" /opt/aws/amazon-cloudwatch-agent/etc/embedctl.json
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/embedctl.json

# 6) Wait for the gateway (runtimes may still be warming up).
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:${GATEWAY_PORT}/health" >/dev/null; then
    echo "embedctl user-data: gateway healthy $(date -Is)"
    exit 0
  fi
  sleep 5
done
echo "embedctl user-data: gateway not healthy after 5 minutes; see docker compose logs" >&2
exit 1
