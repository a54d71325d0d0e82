#!/bin/bash
# Rendered by embedctl from templates/user-data.sh: cloud-init for the GPU instance.
# First boot, as root. Secrets are read from SSM at boot, never written here (user data is readable).
set -euo pipefail
exec >>/var/log/embedctl-user-data.log 2>&1
echo "embedctl user-data: start $(date -Is)"

IMAGE=ghcr.io/embedctl/runtime:golden
MODEL=default
HUB_MODEL=false
FETCH_OPTIMIZE=fp16
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
    -v "${MODELS_DIR}:/models" "${IMAGE}" --input-type=module -e 'const {main}=await import('\''/app/dist/src/cli.js'\'');process.exitCode=await main(['\''node'\'','\''embedctl'\'','\''models'\'','\''fetch'\'',...process.argv.slice(1)]);' "${MODEL}" --optimize "${FETCH_OPTIMIZE}"
  unset HF_TOKEN
fi

# 3) The deploy files `embedctl render` writes.
# compose and nginx.conf travel gzipped (base64) to fit EC2's 16 KB; deploy/ has readable copies.
base64 -d <<'EMBEDCTL_COMPOSE_EOF' | gunzip > "${DEPLOY_DIR}/docker-compose.yml"
H4sIAAAAAAACA+1X62/bNhD/7r/iIAx5DNXLbpqUa1pksdYGS5agMTB0bWEw0llmw4dG0q6zrf/7
QEqOZMdps62fhtowJd6Dd7zHj7SkAgmguMIit7zXW4RclSWTJYGt5q0HUGg2R03gg1EynDCOPQBV
WaakIT0AAEEXoWF/IIFgLxHBLc3JOlrQ6xnUc5ajV9AzaZnAMK21maAlEiinuY6YipfexI0YKRUv
UHpRjcZSbQnMJEdjQmNVVWHheSjnTCspUNp6XYDs7MdseDw6HZ+dD7NTAgVO6Izbde6r88sRgSTy
33XmxfnrEYHgIDlIgo3LXo6HJ68JxEIVyM26SHb20/j0/CWBeE51zFV5Z39hGqGYRFyV67rD7OL0
/M1Z9suIwHd/biKHgjL5aV3v5dEo+/XozX12S2rxI72JaJ6jMZsMHx8dv8rGlye/ZQSCNEmSu1uv
RV5nw5NLAhoLZkgc188ng/2ncR3HueIzgWaZjxBiVdnWkzpkZPnUqpVb95rcoXjZSmnbWT5I+/s+
jSk5SA780LguUIw5E8wSSPv1hgusuLpZKms0aqbz1llPQj2nnUKvPwXelnL7CW/bRM5ZwegKEyBX
M+lsr5NpRa8YZ5ahIfC2rGbvvcQUKbfTfIr59dKMRWMJvA2Oz4bBIwikKtA9Qz9O0ObTne2ptRWJ
45UoJLFGWtxs70Z2inJHHz6vtPKZxwWzOzpS1y8Sku4+2tldY6W7u8H7xjqT1sWCE0iTZZG76lUz
S2BgboNotd/JoCH4dh1XqJkqXOQbXde341LTHG95gz2zzArKwoyVbDPjqqrXRlIWzOWEQAMqY2+l
gYFbAPt+CWAdxOl/Qxwfhq+NOP8TwOh/A4xvgFEDRrtEAxY1ZT96HFJeMYlfRIdcCUFl4TLgdUNn
HLVPQWjo3KehntHKbUFJflMnqqYKuhAolPbEvbQvrtboYaU4yz2bcn6NNybkelYLVVpZzC0WoWjy
LlXw0FKp/c05c5OKyfK/ZbXTSk8eJ+L+qDc3k5W4y5LJBUmj/v4/ibjX8pGo3OixIKf5FGPPiT0r
9yy0eUP0Y5QrOfHs0o0FRaEkqMnkhyYIEu1Hpa/HLq4EpsrYLx4GDu6z4fjo4mT8c/ZmBVrXWC8M
2vv0gEmIUM5B4sKCVWCnzIC7Y3/ajJ3RnX2Rjbvt4uhSx6KoOLVouiotcYOGq7+usJ9vkDMVZ7Yr
uMTnsOb8C1DfAAGrfzEeAAN3LgkP0Lmvk3otxh+fDTuzK2qmnWmYdya4wBwGz57HBc5jm1ctKMcH
SZLA1hZUmkk7ge2X2Qji2ji8Go0u4jRK3ul30v224fnWwAlPkRYQyhSebQ3gLyg1VhD+DtvQTxLY
/kr93N978pl+rrQSaKc4W4VSR447vHk/2nsc1SddpZWraHe2BUJJZpVu8eeBzR+GrqpZGbmVDn2l
tdY6r9GN4A0cW6VpiZE1xVWk0aJ0SY9cJA7TvaIW+ohXEWfGogxpUWg05rA9N58mT5PPA8SG9lx1
hXze02VjdC8m5ebY/w14EceT1w8AAA==
EMBEDCTL_COMPOSE_EOF
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
H4sIAAAAAAACA+1be2/jNhL/35+C0KbY3SLy247tXA7bFu1dgQOut7tAC9xDYKSxzUYmVZJy4ha5
z34gqQdHlh+bbnt3bRLAFsnhzI9DcjgzlF+Qt8ATkJCQ2x2BzS0ksU7JUooN0bDJUqpB9fiK8Qf3
2Y0FX14TCaG0HQnjSgNNiFgSSJhmfGU4rSlPup0XFcfQdGOrkCULktC4PxiN48msP+u8IClTGviC
9Lv2fzHr9/udF0RBugzXQmlIiFpTCQsy6H9ixKgsZZrcwU6RV9+F74FTrsOvk2sCqQLyWa7XQrIf
qWaCF3UZSCLhhxyUfk1yrllKaMGGKXIvmdbAfbS2LUyYXJAe6LhQAG7uvOi8IG8hpZptgWRUrxW5
hVTcEwlKpFsgdEWNdoheA8kkLNkDWbEtcHLP9JqE2SVRwjYqugGyZCkQmXNFqCK084JwwUMphCap
iGlKMiliUIq8qmYpz0gY2sbXhPLETAVLwHK0gEksuKaMg+x2OvdC3oGMCi6gCM21uO5kLHHE3Ywl
1x2QUsgoFSuidAJSknsq+XWnA1vgWpGfOoQQUrCKBecQGzUrMu7Pp9edx05nrXVWkMUpA66jW5Hs
IrOWIqOjvdprS5tJ8eBT1WXXvqRKxyvmUfg1jia/V4iiLrt2hRmourdrBrkFGWlxB1wRsVy6Xgks
aZ7qSO8yIDTLUhbbpdX7XgnuSO4AMpqyLUSabUDkmkwnyjVJiHOpTJPTbEZXoIjpaJtTsYqWQm6o
rtZeZPgSUDHN4MY8W0Lz9/KnwPAPFsGF+Y6YErNpfxBcBhsFcbC4MF+XQbHQI5YYSq90GWxArwWq
LmouX9ZSglwyn8QULwOlqc5VsLhwD5eB3QOGrgJ+S+M74EaOFCmgJltxGcQ0TUGilqIKASgZLYIL
ZdaKWVPRQ9QiaEnT1JQOklYEl0GeKS2BbiKaJBYDrsAqKJvKYXvURVWtaDcpF36xnVmxYaJyFtsb
2vuugSZmdTa7+vXtPSWoTHAF+31xC+pdDiYFvtJrb3Su4jK43WlQkdF5sLioC48v3bqnsbEy1pD0
Etj2lE7MvkCLfJ9yS2UvFavK0PZWVMM93XUdUdcQNVj4lmZDH5xdUexHILPN9Z4Zus2XS5CufTiZ
3u1TlDt41Fe+ZfI7Dsp+fpMioyGZjhstqmouug5niMIgthbJGH9H0i/GVBwikgym8+5wMu667xHZ
0pQlN6O+IizbTm8qQ1V2qIZgbJBt2dCMXNidQf3DkdS78A52kTnzLUFhvs1fELhvz4xcV42FZWxj
7YgeG9LNWM1hHbHEk20NiUHQJrcd4SEMnoASgTPtVoSbZkWCFtmBJ+o2j+9Ae2gGn5hZ8UoDVBqi
0giVxqg0QaUpKl2h0gyV5lh6AwxGM8BwBhjPAAMaYEQDDGmAMQ0wqAFGNcSohg0dYVRDjGqIUQ0x
qiFGNcSohhjVEKMaYVQjjGrUmDqMaoRRjTCqEUY1wqhGGNUIoxpjVGOMaoxRjRsrCqMaY1RjjGqM
UY0xqjFGNcGoJhjVBKOaYFSTxkLHqCYY1QSjmmBUE4xqilFNMaopRjXFqKYY1bSx/zCqKUY1xaim
GNUVRnWFUV1hVFcY1RVGdYVRXTXMAkZ1hVFdYVQzjGqGUc0wqhlGNcOoZhjVDKOaNawVRjXDqOYY
1RyjmmNUc4xqjlHNMao5RjXHqOYeqk/JfI6OBHsqNU2+57AWUbE7IbyzoDxwXGRaC+jbgLVZO2it
HbbWjlprx621k9baaWvtVWvtrLV2vlf7eK4LYVz8Fj0FQc2d8TjNE7Che+nahabgkgqtPsMhcS5u
OCLQA94IRBYXzShBilxDgAaT67bR7P0thbxlSQK8HmXw73/9nYY//vPTxUWAaO1S8uhEBpJqIRde
qiOwgej+xNTENZ39OzRXKl7DBrwhrVUVvx9RVxkbeCC8TilQpW20UiNzYTMZDK9s/mawmPVnA2Ic
2yVlqboZEfNdOqU3ZWB8qOvwvK5VyI3O8P1AvHLjH/0g3x+SzT6h5FPNr47ZyaQ/JJP+iEz6Y/Km
WLsupm8lHw9G5E0VEQoRpVSuoPDHXeTv0gjkhvTWQFPkdjfiosrFr9qSpAj8yHfhl2VW6nMXFhe5
H5re05062O+dlizW4XtJucqE1OE7k6lgetdcMif4ePK/sCk+lN5r7W1zWgfTar04lxK4xn203NkY
SZXa6to0yRtXqMx13emxRdVN6l9X40/Q1MeaLwk6l5wM+32TRKpyGsKkRWKxyQS3cXxgx2HrDL5g
EfgITRII0uWfrVH4BmRs+wz6dSqo1Gvw+A/+8vhU3JCeBJrsPmAKXMScUaWIsd+LXq/NUNaUhj+K
hU/gqY4DtyyLPM+HrJHUJH8ra4YbE+A7Q4Frlc5vC0En8W0HbqckjK/2YH2M5fnWmavw68SP93/R
hYks5ozckDeH5hRRzg3lKaphH/OLMsb50Q7jmu1J4gP23SdnS/Kq4R/dkCB43Zi7hj6//fbb0Nxh
ANcm0wzk5edApb3AoOnmJigZBi9bNfpzVoNnKsb9gTEVdsTB4qdgA0rRlUkfVrcPxSG4IBumlLn2
EZLk/I6Le04+++Zr4+VdE2UkoiuZBSnG84eCgSH8Y3AZmAR7sAgYtwmuqFSug2BsUuI304zZvM0j
tjW1C3loFoxjd1P7bW2zUelgdLYOPD2/tSJe+fdXQhZ+2mtz37QWXOTm+BE83RkkpHTurGd8tirs
WKJqJE9VRb1DjunCT++cy/kMruNjXBUKyYqs/8EgbX/zhclpN6MNXbvcNnuzr4VweVpmrxl4ng/i
kHk8Nh1l33On2s/z7fOuqObHT6zeRzqiqs04PnMzOh9fkW/++u5989Q0t6R/+vJ96UTWW40LHS1F
zpPmLmr1I/cM/0ce6+B8w2Muews4xFxgGAMjTIgz2xTWdwn3II0JUmshtb2xz3Kt/Evx801Oc+Bn
qQuFS78Rz6WYKhMWnjtVXJByK8YiTxNCuTJT86qcPw/763pKquu6nNMtZSm9Tc9Tu0uRRD/kQtMP
0roX+/+iMc1/ZeI8Pm9By1342dJsCu9G1SSHpGmKqG06weUhlFRDyjZMh+6zGIlqMn2IKsrIfVaU
HyBDwoYyzvjqLDkV9RNlKdBnylHwtPG4z+K1i5MaK+iepK/TMmptPUWO0dU5MoymjvCvnKP5B50C
vsMpzUtOG3MyLHMFCSmypc306cIdFUwrYq2Eea9Lyx2hp7aE56SagRVz0zwsvJaHGCCB807X1tTj
UzIAFvYWpDJsB82I3NGYuSgm84vqfSaUtW6lNVkQcmFEnyA8ZONOdvtKyHsqE0jME7lwFGbpPRiX
3zWZp5OMagvdvgjaGPgvpJj0yVC1i+HJfqb1SBbmAA2HBx1VmWfnJZRd7BxO+v3yYVg+jMqHsXsw
24ULHrEENpnQexnEFlGRlgyUf39/kPD4ABjXJh+WFVvAveB1IHNgxuInkw1unKcwSW9Izp/Xv5mt
G75z6arx1fBw0uJqaET5fsHPSnAUu4wlcNiZuH72O06auSLZ9Gztnq3d78/aubX/bPR+d0bPzfhv
JB1wIKocHM8dnJ/mgS3IHXbxwb6KTgo1vqpv7t2eaL6w7H4ioNdMVfmiRIAiXGhi3pK2uQmiRZHn
dDFFAlkqdhvgHnECcUql+ZkBLV+DKVNu1W8ZNiKB1CQ27E9E3M8dQtMS2pbXp3Ie3jLxsx5VaMFF
/Wb3h4UU2N48r77/1dW3d6GSMa4I04bGB/KLLqS2VwjaAlOcqy/kmS9CM9b9nnHapezobbZa9Hqt
HBbj8QgnsS+YiqhcqQvzcY7jdgLDU903lUbFT2a42fJNJ6Cmss2nQKjU+K5suTvCyBFECWR6TcaH
qLTMrfZikJot3R2qvZJRKu2ZStWLaei1qm4s9SFumRRaxCJV5P1f3m0H3WHxPTqsE2U88EhCrva1
Ur4CZ96w6CY9N9GhecnNewfuuHc6Oe2dTs/wTg/QfDzH5tdxaqreXxXb2KTZ/y9coWOx37NBeTYo
zwbl2aAcNiju87HzHwDTOdvBPQAA
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
