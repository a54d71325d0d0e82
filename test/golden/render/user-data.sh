#!/bin/bash
# Rendered by embedctl from templates/user-data.sh: cloud-init for the GPU instance.
# First boot, as root. Secrets are read from SSM at boot, never written here (user data is readable).
set -euo pipefail
exec >>/var/log/embedctl-user-data.log 2>&1
echo "embedctl user-data: start $(date -Is)"

IMAGE=ghcr.io/embedctl/runtime:golden
MODEL=default
HUB_MODEL=false
HOSTED_KEY_PARAMETER=/embedctl/hosted-api-key
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

# 2) Model: built-ins ship in the image; hub models are fetched once to disk.
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

# 3) The deploy files `embedctl render` writes.
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
cat > "${DEPLOY_DIR}/nginx/nginx.conf" <<'EMBEDCTL_NGINX_EOF'

worker_processes auto;
pid nginx.pid;
error_log stderr warn;

events {
    worker_connections 4096;
}

http {
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;

    server_tokens off;
    default_type application/json;
    keepalive_timeout 65s;
    recursive_error_pages on;

    log_format embedctl_json escape=json
        '{"time":"$time_iso8601","request_id":"$request_id","method":"$request_method",'
        '"uri":"$request_uri","status":$status,"split":"$embedctl_backend",'
        '"backend":"$sent_http_x_embedctl_backend","upstream_addr":"$upstream_addr",'
        '"upstream_status":"$upstream_status","request_time":$request_time,'
        '"upstream_connect_time":"$upstream_connect_time",'
        '"upstream_header_time":"$upstream_header_time",'
        '"upstream_response_time":"$upstream_response_time",'
        '"request_length":$request_length,"bytes_sent":$bytes_sent}';
    access_log /dev/stdout embedctl_json;

    client_max_body_size 8m;
    client_body_buffer_size 8m;
    proxy_buffer_size 16k;
    proxy_buffers 32 64k;
    proxy_busy_buffers_size 128k;
    proxy_max_temp_file_size 0;

    resolver 169.254.169.253 valid=30s ipv6=off;
    resolver_timeout 5s;

    map $http_authorization $embedctl_key_from_auth {
        ""      $request_id;
        default $http_authorization;
    }
    map $http_x_tenant_id $embedctl_split_key {
        ""      $embedctl_key_from_auth;
        default $http_x_tenant_id;
    }

    split_clients "$embedctl_split_key" $embedctl_backend {
        10% selfhosted;
        * hosted;
    }

    upstream selfhosted {
        least_conn;
        server 127.0.0.1:8081 max_fails=1 fail_timeout=5s;
        server 127.0.0.1:8082 max_fails=1 fail_timeout=5s;
        keepalive 32;
    }

    server {
        listen 0.0.0.0:8000;
        error_page 502 503 504 @gateway_error;

        location = /health {
            access_log off;
            add_header X-Embedctl-Backend nginx always;
            return 200 '{"status":"ok","component":"nginx","config":"e5fa001662d3","selfHostedPercent":10}\n';
        }

        location = /ready {
            access_log off;
            proxy_pass http://selfhosted;
            proxy_read_timeout 5s;
        }

        location = /_embedctl/nginx_status {
            access_log off;
            allow 127.0.0.1;
            deny all;
            stub_status;
        }

        location = /v1/embeddings {
            error_page 418 = @selfhosted;
            error_page 419 = @hosted;
            if ($embedctl_backend = selfhosted) {
                return 418;
            }
            return 419;
        }

        location / {
            add_header X-Embedctl-Backend nginx always;
            return 404 '{"error":{"message":"embedctl gateway serves POST /v1/embeddings and GET /health","type":"not_found"}}\n';
        }

        location @gateway_error {
            add_header X-Embedctl-Backend nginx always;
            add_header X-Request-Id $request_id always;
            return 502 '{"error":{"message":"embedctl gateway: no backend could answer (request $request_id)","type":"upstream_unavailable"}}\n';
        }

        location @selfhosted {
            proxy_pass http://selfhosted;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_send_timeout 30s;
            proxy_read_timeout 30s;
            proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_next_upstream_timeout 30s;
            proxy_intercept_errors on;
            error_page 502 503 504 = @hosted_fallback;
            proxy_hide_header X-Embedctl-Backend;
            add_header X-Embedctl-Backend selfhosted always;
            add_header X-Request-Id $request_id always;
        }

        location @hosted {
            set $embedctl_hosted_host api.jina.ai;
            proxy_pass https://$embedctl_hosted_host:443/v1/embeddings$is_args$args;
            proxy_set_header Host api.jina.ai;
            proxy_set_header X-Request-Id $request_id;
            proxy_ssl_server_name on;
            proxy_ssl_name api.jina.ai;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 4;
            proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;
            include conf.d/hosted-auth.conf;
            proxy_connect_timeout 5s;
            proxy_send_timeout 60s;
            proxy_read_timeout 60s;
            proxy_hide_header X-Embedctl-Backend;
            add_header X-Embedctl-Backend hosted always;
            add_header X-Embedctl-Fallback no always;
            add_header X-Request-Id $request_id always;
        }

        location @hosted_fallback {
            set $embedctl_hosted_host api.jina.ai;
            proxy_pass https://$embedctl_hosted_host:443/v1/embeddings$is_args$args;
            proxy_set_header Host api.jina.ai;
            proxy_set_header X-Request-Id $request_id;
            proxy_ssl_server_name on;
            proxy_ssl_name api.jina.ai;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 4;
            proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;
            include conf.d/hosted-auth.conf;
            proxy_connect_timeout 5s;
            proxy_send_timeout 60s;
            proxy_read_timeout 60s;
            proxy_hide_header X-Embedctl-Backend;
            add_header X-Embedctl-Backend hosted always;
            add_header X-Embedctl-Fallback yes always;
            add_header X-Request-Id $request_id always;
        }
    }
}
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
# The instance role needs ssm:GetParameter (+ kms:Decrypt for a customer key).
if ! HOSTED_KEY=$(ssm_secret "${HOSTED_KEY_PARAMETER}"); then
  echo "embedctl user-data: cannot read the hosted API key from SSM parameter ${HOSTED_KEY_PARAMETER};" \
    "create it (aws ssm put-parameter --type SecureString --name ${HOSTED_KEY_PARAMETER} --value ...) and reboot" >&2
  exit 1
fi
umask 077
printf 'EMBEDCTL_HOSTED_API_KEY=%s\nEMBEDCTL_DEPLOYMENT=%s\n' "${HOSTED_KEY}" "${DEPLOYMENT}" > "${DEPLOY_DIR}/.env"
unset HOSTED_KEY
umask 022

# 4) Start; restart: unless-stopped survives reboots.
cd "${DEPLOY_DIR}"
retry docker compose --profile monitoring up -d

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
