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
H4sIAAAAAAACA+1ae28jtxH/X59isHZhO9DbsuOT66KXV3NAmhzurrgAfSyo5azEeEVuSa5k5eB+
9mJI7kuSbeVxaBrYB5yk5XA4HM7jN7M8gjcoOWrkMNsALmfIE5tBqtUSLC7zjFk0AzkX8s7/30+U
TK9BY0+7iSCkscg4qBSQCyvknDgtmOT9zlHFsUfTxLwn+BTO2adswi6u0nQ26hxBJoxFOYVh3/2b
Xg2Hw84RGMzS3kIZixzMgmmcwmj4B1rG5JmwcIsbA6ff996hZNL2XvFrwMwgvCzsQmnxI7NCyfAs
Rw0a/12gsWedo84RvMGMWbFCyJldGJhhptag0ahshcDmjDYFdoGQa0zFHczFCiWshV1AL++CUW7Q
sCVCKjIEXUgDzADrHIFUsqeVspCphGWQa5WgMXBaKbfIoddzg2fAJCcNCo6Oo1MxJEpaJiTqfqez
VvoWdRy4oAFWWHXdyQX3xP1c8OsOaq10nKk5GMtRa1gzLa87HVyhtAY+dAAAAqtESYkJacfAZPji
8rpz3+ksrM0DWZIJlDaeKb6JyQRi0tHO02tHm2t116Sqf/vxlBmbzEWDovnE0xRr06Kof/tx02Zg
6tl+GPUKdWzVLUoDKk39LI4pKzIb202OwPI8E4mziMEPRklPcouYs0ysMLZiiaqwcHlh/NARvFsg
cGFyZpNFsI+Fyg3YhVbFfAF2rcBrPWdzBI1caEysgVNnnl06Tgkpy7IZS27P+o6txqTQhlaspxog
edxwpuZxqvSS2cpvYhIX0CQsxxv67gjp7+RDRGJH0+iYPmNh1NXlcBR1o6XBJJoe00c3CmYfC06U
jV/daIl2oVqPw5PuSb1KVGjRJKGf3chYZgsTTY/9l27kNk10leC0bZS0jlYZtobcg9YiJfE0OjZk
ZmSO8V28h1mRG6uRLWPGuSb69oO26OVQKW6DOjyqFeSVedz8uZ9Z8J+41P7+gf1zF8g4Gev21Obz
/TM1mlxJg7tz2yOt2eVmMpRzu2jszj/oRrONRROTyqPpcf3j/sS7AUso6Li4MuC4GhjLyU1axhls
13sMhQfIxFJYWJLnoHFhTReShDsxoNYSThnMxHyO2pOvVZFxUDLbwIwcKS0Mcpqm8awPnyku0IQl
mEaYFWnq8tV6oTKEGaZKow88Qs5dbGbw+ru37yBh0nPMM7Yhlj5qS7yz7qFIGCgNVgXuPtl0YVZY
Lw5Rp0IbC+OLy1uX4ViyAGPZBoSEJS6V3lz7HaKxMFe0X1qf4pPLDN3A2ygwFEOUhozpOUKRZ4px
Q0JKZQHvFqwIOWfOLK7Z5sSEFfrNsLxkdz4IG/EjwtXyeidmewX5cZJ7l6IMd+dD0wzjzYmjcl5z
yMD5GC4nWyOmGg5Tx1ctCpLYhW/ShycZtowmJPmXr1+dGCAvDolOo4cZLivTeYdMK4WcT0O2Jrih
ZILALJ2Ltt6cSq1bTQnWapamIoE1hWRhDXz+xbewVCs0XZeAGXzx7VtYiCQpcmI0o+ztzZJyRMjK
DhO5NYScl/HcyaZhdPmiP76Y9P3nOaxYJvjN+dCAyFeXN1VWKidUR0AJJwj71rJZhjW6mTo7InAD
Pjx0PZghE3n5+hWRhCeMAE4v+DYI7oVbshyOXSBlTUgEdRy+xU1Mu3IEIfvTXxT5z0a6uK4GQ2Ld
x9oT3W+tTqdPu4gFb6zttkkS7Ft3v4QPydBYoJSgYV1NHDkrklu0kKglGu/ZLl5oJgwZksN0BDW9
+zsL8TjTnX1gUsWLBucuSCQ7oDzlte/3573OQLRn4xHsJMuGLgjr0gKef731T6D5pNrp+4UCQdEk
y5x3tOOI3wO5z5LlBqLPkGnU8Mdb3Pwp8hGLcjKcenkpSqkcNbNKB+RyBH+Tt5KiNy1BoWCOFibD
0aG25vh/2DnBKKq3JmSSFRydtIMgfI9++JqjveGXshIRlmwDuZC0i+ADVoGSCA5Xn37f+7KsQt6o
wuIZDc8ZZRjAleBI8cOdsLCB+3rBrDtQZxJ0YteQKg1Mbohv5YfeMUnzIW+VhmBEhtJmGxBzqTQ2
XHILB02Pt7GOJhmjluoKu093O3+p0jPBOcpap9F//vV31vvxn59Mj6MWrd9UTVcqc9qw6sjB610b
rIlrOve3xzSdZZhkgUtsbGlhqqpknzVUp/yaGYLLpOfMLlyFFWKdT9+J0EkhLMw0slvUUziHlIkM
OTBLOYfwuIPaXQgRt0zIF3d3ZOaT8YszV9cJCReGTIoyRBekqrIGnfuFCYCeTp9KhtLSAjeNvVyr
GRoQth/yRabmBioAF+oUhwyUZlpkG6ovKOTzqMxMbn0qIRw4BY2EEIQNPthgVZ5JQ4cZMmMdBq0P
Kqw5Gn/qauvR9Gp4NQJKyKQlc+O1VSajm7L6eWjq+LCpVV0F5+P66RG84hnWm2iWoUmmDAVdr7kT
4x03QLs2gCTmPc+9daIVzKIgQNAKnLuCoEU9f++ZmiUELqpQoaSLf0a51NBYzMXTTJkq2++vGSsQ
dd+sR5sH4/obrfZGUytfknmaYDNLdutsiE4YTsMZF1IT7nTogKUWNbCqsOyCYRtqI5i168XQBhrM
v8tRvnzlC1VKbTlCmZJYRua1gZxpg2TwltT19bu/fgNUltZbblS5F8MxXAzP4WI4gT+HCO1L2YBi
fBXrK224gUHw21oZW1VFBYyqMc5DMQSNsP1ZSI9eSSxbs415cN5bq0Vie+80kyZX2vbeUtUt7GY7
/uzjo9EWWsJ4OKQCu6ob1W3UjRK1zJV0tVLkJHHPqK0VTaNmU4sKZMzSr93xvUaduDmj4f0/5Em9
3P1+lVWJwPfbQqH6U1SYUaFROW57kKPcEEX7qbHFLCz0pHyr0cBJyIWc74j1y0/v+94b75i9V7wJ
QD/qqTdMfDK6ghv48760t0P5giifohoP2/ziXEj56IRJzXYv8RF8vsDklvCsj5BMbiiBzSliUc0l
kE/JmYsWZCvjH8USNCWaPWWSb3H3dHO0vngPhATVhfwBE4v8rN+aIlI43UJ6NxBFZ1vWsXVi79+/
71GzFqWl3hzCSYClGlm2vIlKhtHJ3jP7JfbW8PTJcESe7g4gmn6IlmgMm1OHperXhkA3haUwrk5Q
ulJtKMSuwdCKrd7zFEqYHRiAg9vdiFqS0TQS0lWJcWnjXgQKKbw5zHLhqoX7dvSoK62HToFA402N
CfedRqWD84N1sA2m4bRZYCkdzOWMbHGhpCqoVePKqbRRVTiMf7Aq3F7iaic/VxW1Dz6mi/Hwp3M+
gOvkcK5lMXioxKOrx3hXVC8eD+2DXymWVzY1OdCmPGIyvme3lV6oO/OXL9+VQKK2GKlsnKpC8m1j
2Le1NlT5neSsoGeCZIf6rlRQ2lbiulsBNp6WWLgh+1mt66rTXEi2YiIjIHqQ2vfWKXVjMGfGAFW/
08HgoXzrKV2JvEJtiO1oG9N4GoO21OvnVWnR6i/spSWQBse09BOEDx3yk9O+UnrNNEdO3+DYU5AV
3FFI80P0bR+j5isFKjbGZv9yku/WI20aAvsP0xx57xPG1QGCU5FqqRNklXeBa2h6pUbfZ5ebqpFO
1WChkZr7F8OhK762VpiMX4BV6sx3S6wWLjHstOR9SzZRhStSqlexrCI4MWW539+zT2IVV0Wmd/hy
286MSLrwZVx+OS+/TPwXElUqGdeKuH5qqZg2ZGB8AOHjByWkpYohD1nQvx58ACvSXpo1GcndBpu+
G7LXpwTHhwPfT6nKGm7+WwuUT4SlAK+fo9NzdHqOTv+D6OTd7zlINduBK9RtuyWJJS/L8OAEjF5/
uBhC78nhlOyUY56pzZIcg9ObaKLjmGTMNVGZLVkEvF3dYFoqjhmBQHefy19y6tFIz42cndGbyCRD
pv3pNhuuvlewwsSSMbiXKEwq92rFPwSTs6TRTdwbhsM2fx/AvMHnDVq96b10PdvR4yj+8AocnYU0
q+4tazmtXxT43uH2rRd/7cwuXKjzyL8yGGosuyqBgqvn798mfizreqr6aJhJs/6omgNSxWUz/JGi
5Gc71k6/IxeSOvSknsYZfHwfacXKZ1f5rbrKgfbyca1+jyXtrcMN2uYx+fXoA1gu+j8IyfpMXD8G
js10MNjLYTqZnLebOcfCxEzPzTH9dwjufUKGn4t+TRaHO6OS4tM2gKmp3PBTQpiMoL9IN48w8gQx
x9wuYPIQldWF016C2orUt8QHaJOBMdmAHppBwnqNUdNPtH2IW66VVYnKDLz75u1q1B+Hz/OHdWKo
gIk1FmZXK0ft3rZr5trW3a2+u23j3hKYEPLc60jhb574JFJe8RBmB4AbKfIcw8278j3wkhnr3whw
A6fuzjQF2uHlcOjvs6jCVpendbjJvsXYX8x1N/Wqi9XTijhcdV8goFwJraTLcOVtsu0XHUF8euvX
5wO/+R5deWlcUXm8Rrp4uka6PKBGeoDm18PLh2LlauJXIRxRl/H/og3wWAvgOTA+B8bnwPgcGH//
gdH/f9/5L13q+IgJNgAA
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
