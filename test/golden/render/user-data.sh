#!/bin/bash
# Rendered by embedctl from templates/user-data.sh: cloud-init for the GPU instance.
# Runs once at first boot as root. Secrets (hosted API key, HF token) are read from SSM at boot,
# never written into this script: user data is readable by anyone who can describe the instance.
set -euo pipefail
exec >>/var/log/embedctl-user-data.log 2>&1
echo "embedctl user-data: start $(date -Is)"

IMAGE=ghcr.io/embedctl/runtime:golden
MODEL=default
HUB_MODEL=false
HOSTED_KEY_PARAMETER=/embedctl/hosted-api-key
GATEWAY_KEYS_PARAMETER=/embedctl/gateway-keys
HF_TOKEN_PARAMETER=''
GATEWAY_PORT=8000
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
# The metrics' Deployment dimension: the provision --name tag.
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

# 1) Docker and the NVIDIA container toolkit: the Deep Learning AMI has both; install if absent.
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

# 2) The model: built-in bundles ship in the image; hub models are fetched once onto the disk.
install -d -m 0755 "${MODELS_DIR}" "${DEPLOY_DIR}" "${DEPLOY_DIR}/nginx/templates" "${METRICS_DIR}"
chown 10001:10001 "${METRICS_DIR}" # the runtime's user
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
    -v "${MODELS_DIR}:/models" "${IMAGE}" --input-type=module -e 'const {main}=await import('\''/app/dist/src/cli.js'\'');process.exitCode=await main(['\''node'\'','\''embedctl'\'','\''models'\'','\''fetch'\'',process.argv[1]]);' "${MODEL}"
  unset HF_TOKEN
fi

# 3) The deploy files, as `embedctl render` wrote them.
cat > "${DEPLOY_DIR}/docker-compose.yml" <<'EMBEDCTL_COMPOSE_EOF'
name: embedctl

x-logging: &logging
  driver: json-file
  options:
    max-size: "50m"
    max-file: "5"

services:
  runtime-1:
    image: ghcr.io/embedctl/runtime:golden
    restart: unless-stopped
    environment:
      EMBEDCTL_MODEL: default
      EMBEDCTL_HOST: 0.0.0.0
      EMBEDCTL_PORT: "8080"
      EMBEDCTL_MODELS_DIR: /models
      EMBEDCTL_EMF_LOG: /var/log/embedctl/runtime-1.emf.log
      EMBEDCTL_DEPLOYMENT: ${EMBEDCTL_DEPLOYMENT:-main}
    volumes:
      - /opt/embedctl/models:/models:ro
      - /var/log/embedctl:/var/log/embedctl
    ports:
      - "127.0.0.1:8081:8080"
    mem_limit: 12g
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 1
              capabilities: [gpu]
    healthcheck:
      test: ["CMD", "node", "-e", "fetch('http://127.0.0.1:8080/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
      interval: 10s
      timeout: 3s
      retries: 3
      start_period: 120s
    stop_grace_period: 35s
    logging: *logging

  runtime-2:
    image: ghcr.io/embedctl/runtime:golden
    restart: unless-stopped
    environment:
      EMBEDCTL_MODEL: default
      EMBEDCTL_HOST: 0.0.0.0
      EMBEDCTL_PORT: "8080"
      EMBEDCTL_MODELS_DIR: /models
      EMBEDCTL_EMF_LOG: /var/log/embedctl/runtime-2.emf.log
      EMBEDCTL_DEPLOYMENT: ${EMBEDCTL_DEPLOYMENT:-main}
    volumes:
      - /opt/embedctl/models:/models:ro
      - /var/log/embedctl:/var/log/embedctl
    ports:
      - "127.0.0.1:8082:8080"
    mem_limit: 12g
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 1
              capabilities: [gpu]
    healthcheck:
      test: ["CMD", "node", "-e", "fetch('http://127.0.0.1:8080/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
      interval: 10s
      timeout: 3s
      retries: 3
      start_period: 120s
    stop_grace_period: 35s
    logging: *logging

  gateway:
    image: nginx:1.27
    restart: unless-stopped
    command: ["nginx", "-p", "/var/cache/nginx/", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"]
    network_mode: host
    environment:
      EMBEDCTL_HOSTED_API_KEY: ${EMBEDCTL_HOSTED_API_KEY:?set EMBEDCTL_HOSTED_API_KEY in .env next to this file}
    volumes:
      - ./nginx/nginx.conf:/etc/nginx/nginx.conf:ro
      - ./nginx/templates:/etc/nginx/templates:ro
      - ./nginx/keys:/etc/nginx/keys:ro
    depends_on:
      runtime-1:
        condition: service_started
      runtime-2:
        condition: service_started
    healthcheck:
      test:
        - CMD
        - bash
        - -c
        - exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '
      interval: 10s
      timeout: 3s
      retries: 3
    mem_limit: 256m
    logging: *logging

  prometheus:
    image: prom/prometheus:v2.54.1
    profiles: ["monitoring"]
    restart: unless-stopped
    command: ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=15d", "--web.listen-address=127.0.0.1:9090"]
    network_mode: host
    volumes:
      - ./prometheus.yml:/etc/prometheus/prometheus.yml:ro
    mem_limit: 1g
    logging: *logging
EMBEDCTL_COMPOSE_EOF
# nginx.conf travels gzipped (base64) to fit EC2's 16 KB; deploy/nginx/nginx.conf is the readable copy.
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
H4sIAAAAAAACA+1be28bNxL/X59isPbBdqG3ZZ8jnQ9N2/QaoNcGiQ8pcI8FtRxJrFfkHsmVrAa+
z34YkvuSZFtNG1yvsAJYq+VwSA5nfvMgcwRvUXLUyGG6AVxOkSc2hZlWS7C4zFJm0fTkXMg7/7eb
KDmbgMaOdh1BSGORcVAzQC6skHPitGCSd1tHJccOdRPzjuBjuOSXg/OrF/zqMjlvHUEqjEU5hn7X
/Rtf9fv91hEYTGedhTIWOZgF0ziGQf8PNIzJUmHhFjcGTn/o3KBk0nZe8wlgahBe5nahtPiJWaFk
eJehBo3/ztHYs9ZR6wjeYsqsWCFkzC4MTDFVa9BoVLpCYHNGiwK7QMg0zsQdzMUKJayFXUAna4NR
rtGwJcJMpAg6lwaYAdY6AqlkRytlIVUJSyHTKkFj4LQUbp5Bp+Maz4BJThIUHB1HJ2JIlLRMSNTd
Vmut9C3qOHBBAyy3atLKBPfE3UzwSQu1VjpO1RyM5ag1rJmWk1YLVyitgQ8tAIDAKlFSYkLSMTDq
v7ictO5brYW1WSBLUoHSxlPFNzGpQEwy2nk7cbSZVnd1quq3b58xY5O5qFHU33iafG0aFNVv326a
DEzV2zejXqGOrbpFaUDNZr4XxxnLUxvbTYbAsiwVidOI3o9GSU9yi5ixVKwwtmKJKrdweWF80xHc
LBC4MBmzySLox0JlBuxCq3y+ALtW4KWesTmCRi40JtbAqVPPNm2nhBlL0ylLbs+6jq3GJNeGRqy6
GqD5uOZUzeOZ0ktmS7uJabqAJmEZXtOzI6TPyYeIph2No2P6joVRV5f9QdSOlgaTaHxMX+0oqH0s
OFHWfrWjJdqFarwOb9on1ShRrkWdhH62I2OZzU00PvYP7cgtmujKidOyUdI4WqXYaHIvGoMUxOPo
2JCakTrGd/EeZnlmrEa2jBnnmuibL5pTL5qK6daow6tKQF6Yx/Wf+5kF+4kL6e9v2N93gYyTsm53
rb/f31OjyZQ0uNu32dLoXSwmRTm3i9rq/It2NN1YNDGJPBofVz/uT7wZsIRAx+FKj+OqZywnM2ko
Z9BdbzEED5CKpbCwJMtB42BN55Imd2JArSWcMpiK+Ry1J1+rPOWgZLqBKRnSLDfIqZvGsy58obhA
E4ZgGmGaz2bOX60XKkWY4kxp9MAj5NxhM4M337+7gYRJzzFL2YZYetSWeGfdS5EwUBqsCty9s2nD
NLd+OkQ9E9pYGF5c3joPx5IFGMs2ICQscan0ZuJXiMbCXNF6aXzCJ+cZ2oG3UWAIQ5SGlOk5Qp6l
inFDk5TKAt4tWB58zpxZXLPNiQkjdOuwvGR3HoSN+AnhajnZwWwvIN9O896lKODuvG/qMF7vOCj6
1ZsMnA/hcrTVYsrm0HV41aCgGTv4Jnl4kn5DaYKTf/nm9YkBsuLg6DT6MMN5Zdrv4GmlkPNx8NYU
biiZIDBL+6KtV6dC6laTg7WazWYigTVBsrAGvvzqO1iqFZq2c8AMvvruHSxEkuQZMZqS9/ZqST4i
eGUXE7kxhJwXeO7mpmFw+aI7vBh1/fc5rFgq+PV534DIVpfXpVcqOpRbQA4nTPadZdMUq+hm7PSI
ghvw8ND2wQypyMs3r4kkvGEU4HSCbYPgfnJLlsGxA1JWD4mgwuFb3MS0KkcQvD99osh/19zFpGwM
jnUfa090vzU67T6tIha8NrZbJs1g37j7Z/jQHGoDFDOoaVc9jpzmyS1aSNQSjbdshxeaCUOK5GI6
CjW9+TsN8XGm2/vApMSLGuc2SCQ9ID/lpe/X563OQLRn4RHsOMuaLCjWpQE8/2rpn0H9TbnS9wsF
gtAkTZ11NHHEr4HMZ8kyA9EXyDRq+NMtbv4cecQinwynfr6EUipDzazSIXI5gr/JW0noTUMQFMzR
wqg/OFTXHP8POzsYRdXShEzSnKObbS9MvkM/fM7RXPBLWU4RlmwDmZC0imADVoGSCC6uPv2h86rI
Qt6q3OIZNc8ZeRjAleBI+OF2WNjAfb1g1m2oUwnasQnMlAYmN8S3tENvmCT54LcKRTAiRWnTDYi5
VBprJrkVB42Pt2MdTXOMGqLL7T7Z7XxmSk8F5ygrmUb/+dffWeenf342Po4atH5RFV0hzHFNqyMX
Xu/qYEVc0bnPHtV0mmGSBS6xtqSFKbOSfdpQ7vIbZihcJjmnduEyrIB13n0nQie5sDDVyG5Rj+Ec
ZkykyIFZ8jkUj7tQuw0BcQuHfHF3R2o+Gr44c3mdkHBhSKXIQ7RBqtJr0L5fmBDQ0+5TylBoWuCm
sZNpNUUDwnaDv0jV3EAZwIU8xUUGSjMt0g3lFwT5PCo8kxufUggXnIJGihCEDTZYY1XsSU2GKTJj
XQxabVQYczD8o8utB+Or/tUAyCGTlMy1l1bhjK6L7OehrsPDupZ5FZwPq7dH8JqnWC2inoYmqTIE
ul5yJ8YbbgjtmgEkMe947o0dLcMsAgEKrcCZKwga1PP3lqlZQsFFCRVKOvwzyrmG2mAOT1NlSm+/
P2csg6j7ej5a3xhX32iUN+pSeUXqaYLOLNmt0yHaYTgNe5xLTXGniw7YzKIGViaWbTBsQ2UEs3a1
GFpAjfn3GcqXr32iSq4tQyhcEktJvTaQMW2QFN6SuL65+eu3QGlpteRalnvRH8JF/xwu+iP4PCC0
T2Un+8hHg3P4vEyolIpd6BsCHp/w+qQcrqEXTLyS21YCUsZQZRvnIW+CGsJ/ETyplydL12xjHuz3
zmqR2M6NZtJkStvOO0rQhd1sQ9U+PhptriUM+33KxcsUU91G7ShRy0xJl1ZFbibuHVXAonFUr39R
Lo3p7Bu3029QJ67PoH//D3lSDXe/X2Slz/CluZDT/hwRppSTlDbebOQoN0TRfGtsPg0DPTm/1aDn
ZsiFnO9M65fv3g+dt163Oq95PVb9pLveUO8ruIbP93nIHcoXRPkU1bDf5BdnQspHO4wqtk8SP2CM
dfIj+HKByS1Fyh57mdyQa5wTFlI2J5CPCSbyRjBYICuhFJoiTj5lkm9x93RztL4sEAgpCRDyR0ws
8rNuo4uYwelWDHkNUXS2pUxbG/z+/fsOlYFRWqr6IZyEgFcjS5fXUcEwOtm7xb9EPWvAMOoPCBjc
FkTjD9ESjWFzqt2UleAAoWNYCuMyEKVL0YYUbwKGRmxUtcdQBPCBAbhAvh1RsTMaR0K6/DMudttP
gRCI15tZJlwect8EmyqHe2gXKBy9rqLNfbtRyuD8YBlsh+lwWk/dlA7qcka6uFBS5VQEconarJav
uOzhYFG4tcTlSj5WFJXJPiaLYf/ncz6A6+hwrkWaeeiMB1eP8S6pXjzuCXq/EvSXOjU6UKd8LGZ8
NXDLG1Hd5y+vboq4o9IYqWw8U7nk28qwb2m7gPorr3VwuP34MqQPal1hVRhQhLdXywAiM6Qg0UWC
SlsXL2a5NfXjscMtZ3vhB4mrETP+TiKCsFUUGx+6VVJBYYqJKzOG+P202L/a3M+qLSlL/rlkKyZS
yggOEvvehLGq0GbMGKAyxLjXeyia8ZSuVrFCbYjtYDti9DQGbSHXL8scr1Ho2UtLITAc09BPED60
yU92+1rpNdMcOT3BsacgLbgjD+Cb6Gkfo/rZDmV9Q7N/OMl3E8MmDWVdD9McebASxiVkglO1wFJJ
zipvAhOog5hGf+AhN+WJBqXluUY6Zbno910WvDXCaPgCrFJnvmxltXB+dOdsxNfGE5W7bLE8E2cl
wYkp6i7dPeskVnGZ7XuDL5bt1IhmFx6GxcN58TDyDzRVqWRcCWLy1FAxLcjA8ADCxzdKSEv5WBag
z5/TPhBc01rqyTHNuxnK+7LUL4rOgwkKjg/j5M9JkWuo8FvD1SdQLOQ6z2D2DGbPYPY/ADNvfs+Y
9rGYdgSvVqibak4zlryoiQSbYXTK5SCHrkPAKak1xyxVmyXZEacLB0THMUmZq5UzW7AIyU95UW2p
OKYUYrpre/4uW4daOq7l7IwOnJMUmfabWK+r+8LNChNLuuPOyphU7gTNvwSTsaRWNN6L2mGZv4+w
v8bnLVq96bx0pfnB4znC4ekcOg2pl0C2tOW0Og/ydd/ty03+dqFdOGT0eUWpMHR+4HIQwmLP32eQ
n0q7nsptampSz27KfFOquDjzeCTl+WjD2ik+ZULSQQyJp7YHn95GGtD6bCq/VVM5UF8+rdbv0aS9
Wb5BW98mPx59ActE90chWZeJyWOxtBn3ens5jEej82Zl7ViYmOm5OaY/h4TJT8zhY4Nlk8bharAk
fNqOdyoq1/zUJExKmYKYbR5h5AlijpldwOghKqtzJ70EtRUzfz7RQ5v0jEl79NL0EtaptZpuou1D
3DKtrEpUauDm23erQXcYvs8flomhfCfWmJtdqRw1DxpcZd02ruh13aUqd2RjAuS5U2fhLxh5J1Lc
5BFmJ143UmQZhguWxXH/khnrj2e4gVN3NZ6Atn/Z7/trSyq35R15Hf7DwhZjf//aXcgs78+PS+Lw
PxoWCChXQivpPFxxaXD71ClMn05su7znF9+hm021m0iPp1QXT6dUlwekVA/Q/Hrx8qGxctnx6wBH
VMP8v6gaPFYxeAbGZ2B8BsZnYPz9A6P/e9/6L6jcuRXwNwAA
EMBEDCTL_NGINX_EOF
cat > "${DEPLOY_DIR}/nginx/templates/hosted-auth.conf.template" <<'EMBEDCTL_AUTH_EOF'
proxy_set_header Authorization "Bearer ${EMBEDCTL_HOSTED_API_KEY}";
EMBEDCTL_AUTH_EOF
cat > "${DEPLOY_DIR}/prometheus.yml" <<'EMBEDCTL_PROM_EOF'
global:
  scrape_interval: 15s
  evaluation_interval: 15s

scrape_configs:
  - job_name: embedctl-runtime
    metrics_path: /metrics
    static_configs:
      - targets:
          - 127.0.0.1:8081
          - 127.0.0.1:8082
EMBEDCTL_PROM_EOF
# The instance role needs ssm:GetParameter (and kms:Decrypt for a customer key) on these.
if ! HOSTED_KEY=$(ssm_secret "${HOSTED_KEY_PARAMETER}"); then
  echo "embedctl user-data: cannot read the hosted API key from SSM parameter ${HOSTED_KEY_PARAMETER};" \
    "create it (aws ssm put-parameter --type SecureString --name ${HOSTED_KEY_PARAMETER} --value ...) and reboot" >&2
  exit 1
fi
umask 077
printf 'EMBEDCTL_HOSTED_API_KEY=%s\nEMBEDCTL_DEPLOYMENT=%s\n' "${HOSTED_KEY}" "${DEPLOYMENT}" > "${DEPLOY_DIR}/.env"
unset HOSTED_KEY
# Gateway keys: only callers with one reach either side (lines "client <key>" / "operator <key>",
# turned into nginx's map; a malformed line stops the boot rather than open the gateway).
install -d -m 0700 "${DEPLOY_DIR}/nginx/keys"
if ! GATEWAY_KEYS=$(ssm_secret "${GATEWAY_KEYS_PARAMETER}"); then
  echo "embedctl user-data: cannot read the gateway keys from SSM parameter ${GATEWAY_KEYS_PARAMETER};" \
    "create it (lines \"client <key>\" and \"operator <key>\") and reboot" >&2
  exit 1
fi
if ! printf '%s\n' "${GATEWAY_KEYS}" | awk '/^[[:space:]]*(#|$)/ { next }
    NF == 2 && $1 ~ /^(client|operator)$/ && $2 ~ /^[A-Za-z0-9._~+\/=-]+$/ && length($2) >= 16 { printf "\"Bearer %s\" %s;\n", $2, $1; n++; next }
    { bad = 1 } END { exit (bad || n == 0) }' > "${DEPLOY_DIR}/nginx/keys/gateway-keys.conf"; then
  echo "embedctl user-data: SSM parameter ${GATEWAY_KEYS_PARAMETER} must hold lines \"client <key>\" / \"operator <key>\" (keys of 16+ characters)" >&2
  exit 1
fi
unset GATEWAY_KEYS
umask 022

# 4) Start everything; restart: unless-stopped brings it back after a reboot.
cd "${DEPLOY_DIR}"
retry docker compose --profile monitoring up -d

# 5) CloudWatch agent: host and GPU metrics (namespace Embedctl), this log, the runtimes' EMF lines.
if [ ! -x /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl ]; then
  ARCH=$(dpkg --print-architecture)
  retry curl -fsSL -o /tmp/amazon-cloudwatch-agent.deb "https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/${ARCH}/latest/amazon-cloudwatch-agent.deb"
  dpkg -i -E /tmp/amazon-cloudwatch-agent.deb
fi
cat > /opt/aws/amazon-cloudwatch-agent/etc/embedctl.json <<'EMBEDCTL_CWAGENT_EOF'
{
  "agent": { "metrics_collection_interval": 60, "run_as_user": "root" },
  "metrics": {
    "namespace": "Embedctl",
    "append_dimensions": { "InstanceId": "${aws:InstanceId}", "InstanceType": "${aws:InstanceType}" },
    "aggregation_dimensions": [["InstanceId"]],
    "metrics_collected": {
      "cpu": { "measurement": ["cpu_usage_active"], "totalcpu": true },
      "mem": { "measurement": ["mem_used_percent"] },
      "disk": { "measurement": ["used_percent"], "resources": ["/"] },
      "nvidia_gpu": {
        "measurement": ["utilization_gpu", "utilization_memory", "memory_used", "memory_total", "temperature_gpu", "power_draw"]
      }
    }
  },
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          { "file_path": "/var/log/embedctl-user-data.log", "log_group_name": "/embedctl/user-data", "log_stream_name": "{instance_id}" },
          { "file_path": "/var/log/embedctl/*.emf.log", "log_group_name": "/embedctl/DEPLOYMENT_NAME/metrics", "log_stream_name": "{instance_id}", "retention_in_days": 14 }
        ]
      }
    }
  }
}
EMBEDCTL_CWAGENT_EOF
sed -i "s#DEPLOYMENT_NAME#${DEPLOYMENT}#" /opt/aws/amazon-cloudwatch-agent/etc/embedctl.json
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/embedctl.json

# 6) Wait until the gateway answers (the runtimes may still be warming up behind it).
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:${GATEWAY_PORT}/health" >/dev/null; then
    echo "embedctl user-data: gateway healthy $(date -Is)"
    exit 0
  fi
  sleep 5
done
echo "embedctl user-data: gateway not healthy after 5 minutes; see docker compose logs" >&2
exit 1
