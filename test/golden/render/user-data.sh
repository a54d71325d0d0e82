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
H4sIAAAAAAACA+1be28bNxL/X59isPbBdqG3ZdeRz4cmbXoN0GuDJIcUuMeC2h1JrHfJPQ5Xthrk
PvthSO5qV5ZtNW1xd4UdIJaWwyE5j988uD6AN6hSNJjCbA2YzzBNbAZzo3OwmBeZsEgDtZDq1v/f
T7SaX4LBnnETQSqyKFLQc8BUWqkWzGkpVNrvHNQcezxNLnoynUJycXYxmU+Gs+Hn484BZJIsqikM
++7f9GI4HHYOgDCb95aaLKZAS2FwCqPhH3gZKjJp4RrXBMc/9N6hEsr2XqWXgBkhPC/tUhv5k7BS
q/CsQAMG/1Ui2ZPOQecA3mAmrFwhFMIuCWaY6RswSDpbIYiF4EOBXSIUBufyFhZyhQpupF1Cr+gC
aTdIIkeYywzBlIpAEIjOASitekZrC5lORAaF0QkSwXEt3LKAXs8NnoBQKUtQpug4OhFDopUVUqHp
dzo32lyjiQMXJBCl1ZedQqaeuF/I9LKDxmgTZ3oBZFM0Bm6EUZedDq5QWYIPHQCAwCrRSmHC0iGY
DJ+dX3Y+djpLa4tAlmQSlY1nOl3HbAIxy+jO00tHWxh926TafPfjc0E2WcgGRfOJpylvqEWx+e7H
qc2ANrP9MJoVmtjqa1QEej73s1KcizKzsV0XCKIoMpk4ixj8SFp5kmvEQmRyhbGVOerSwvkZ+aED
eLdESCUVwibLYB9LXRDYpdHlYgn2RoOXeiEWCAZTaTCxBMfOPLusTgVzkWUzkVyf9B1bg0lpiFfc
TCXg/bjhTC/iuTa5sLXfxLxdQEpEgVf82RHyz9GHiLcdTaND/h1L0hfnw1HUjXLCJJoe8q9uFMw+
lilTNr51oxztUrcehyfdo80qUWlkk4S/diOywpYUTQ/9h27kDs109cb52Kh4HaMzbA25B61FKuJp
dEhsZmyO8W28g1lZkDUo8likqWH69oP21quharsN6vBoIyAvzMPm193Mgv/ElfR3D+yeu0SRsrFu
T20+3z3TIBVaEd6d2x5pza4Ok6Fa2GXjdP5BN5qtLVLMIo+mh5svH4+8G4iEQcfhyiDF1YBsym7S
Ms5gu95jGB4gk7m0kLPnIDlYM6XizR0R6BsFxwJmcrFA48lvdJmloFW2hhk70rwkTHmawZM+vNCp
RApLCIMwK+dzF69uljpDmOFcG/TAI9XCYbOA19+/fQeJUJ5jkYk1s/SorfDWuocyEaANWB24+2DT
hVlp/XaYei4NWRifnV+7CCeSJZAVa5AKcsy1WV/6EyJZWGg+L6/P+OQiQzfwJg3EGKINZMIsEMoi
0yIl3qTSFvB2KcoQcxbC4o1YH1FYod+E5VzcehAm+RPCRX55B7O9gPw47/suRQV3p0Nqwnhz4qia
1xwiOB3D+WRrhOrhMHV80aLgHTv4Znl4kmHLaEKQf/761REBe3EIdAZ9muGiMus7RFol1WIaojWn
G1olCMKyXoz15lRJ3RoOsNaI+VwmcMOQLC3Bl199B7leIXVdABbw1XdvYSmTpCyY0YyjtzdLjhEh
KrucyK0h1aLCc7c3A6PzZ/3x2aTvf5/CSmQyvTodEshidX5VR6VqQq0CDjhhs2+tmGW4yW6mzo44
uQEPD12fzLCJPH/9iknCE8EJTi/4NsjUby4XBRw6IBXNlAg2OHyN65hP5QhC9OefKPK/G+Hish4M
gXUXa0/0cWt11j6fIpZpY213TN7BrnV37/C+PTQWqHbQsK5mHjkrk2u0kOgcyXu2wwsjJLEhuZyO
U03v/s5CfJ7pdB+Y1HjR4NwFhWwHHKe89P35vNcRRDsOHsGdYNmQBee6vIDnvzn6Z9B8Up/0/VKD
ZDTJMucdbRzxZ2D3yUVBEL1AYdDAH69x/afIIxbHZDj2+2WU0gUaYbUJmcsB/FVdK0ZvXoKhYIEW
JsPRvrbm+H+4o8Eo2hxNqiQrU3S7HYTN9/iLrznaB36u6i1CLtZQSMWnCD5gNWiF4PLq4x96L6sq
5I0uLZ7w8EJwhAFcyRQZP5yGpQ3cb5bCOoU6k2CNXcJcGxBqzXxrP/SOyZIPcasyBJIZKputQS6U
Nthwya08aHq4nesY3mPUEl1pd8nuzs9cm5lMU1QbmUb//uffRO+nf3w2PYxatP5QG7pKmNOGVUcu
vb5rgxviDZ372WGazjIoWWKOjSMtqa5KdllDreXXgjhdZjlndukqrIB1Pnwn0iSltDAzKK7RTOEU
5kJmmIKwHHM4H3epdhcC4lYB+ez2ls18Mn524uo6qeCM2KQ4QnRB6TpqsN7PKCT0rH0uGSpLC9wM
9gqjZ0ggbT/Ei0wvCOoELtQpLjPQRhiZrbm+YMhPoyoyufW5hHDJKRjkDEHa4IMNVpVOGjLMUJB1
OehGUWHN0fhzV1uPphfDixFwQGYp0ZWXVhWMrqrq576p4/2m1nUVnI43Tw/gVZrh5hDNMjTJNDHo
eskdkXfckNq1E0hm3vPcWxqt0ywGAU6twLkrSF7U8/eeaUTCyUUNFVo5/CPtQkNjMYenmaY62u+u
Gesk6mOzHm0qxvU3Wu2NplResnlSsJlcXDsbYg3DcdBxqQznnS47EHOLBkRdWHaBxJrbCHTjejF8
gAbz7wtUz1/5QpVDW4FQhSSRsXmtoRCGkA3esri+efeXb4HL0s2RG1Xu2XAMZ8NTOBtO4IuA0L6U
vdxFPhmdwhd1QaV17FLfkPD4gtcX5XAFg+DiG7ltFSB1DlWPpWmom6CB8C9CJPXyFNmNWNO9895a
IxPbe2eEokIb23vLBbq0622o2sXHoC2NgvFwyLV4XWLq66gbJTovtHJlVeR24p5xByyaRs3+F9fS
mM2/cZp+jSZxc0bDj39XR5vlPnYaOuWkxhn4TGRCJWiOqMLHZInJNRwXRq8ksVx7vVyqQa+Xi9uT
qduqT5ZrG5/hUnKGvJTUWCKo1sc1ka7rjtfzb1/43IhQcfESbMlq1wbk3XDBJ6yrvZwn8LS8v1Pj
3v72V7gvJwpBBBwzp4PBruC0oWT+rUR7hzib+6lDsO90hhbBz7HIjEu8GjLbgymqNVO0n5ItZ2Gh
R/e3Gg3cDlOpFne29cud4YfeG++qvVdpM/X/TZ2ohRYXcAVf3KfTFuUzpnyMajxs84sLqdSDEyYb
to8S34NtTfID+JIdkgsPH8qEWnOmsWDHYhuVmE4ZdctWbl0FKgZ9pKrsOBYq3eLu6RZofZclEHJN
JdWPmFhMT/qtKXIOx1sp+RVE0cmWMW0p+P379z3uqqOy3ERFOAr1g0GR5VdRxTA62qniX2KeDZyd
DEeMs04F0fRDlCORWHArrG6sB9iaQi7JFXTa1KINFfOlQ672JcEUqnqowj1XF3Uj7h1H00gqV87H
lbb9FhjQ0+awKKQr6z62sXtTEt+nBc7urzbJ+y5t1DI43VsG21UPHDcrYW2CuZywLS610iX31By2
zxvlnyvG9haFO0tcn+RTRbFx2YdkMR7+fM57cJ3sz7Wq2vfd8ejiId411bOHI8HgV4L+2qYme9qU
D+jkm6tb0YjbaH9++a5K4zYWo7SN57pU6bYx7DraXUD9lc862t9/fFfX1wiuTy0JNOPtRR5AZI6c
c7vEWhvr0u+itNS8bdzfc7YPvpe4Win47yQjCKriUmNfVSkNlSsmrmsbyqHjSn+NvZ9sVFLfoJRK
rITMuMDaS+w76+9PyVBd62eFxuXqo+2M0dMQ2kquX9Ylc6tvtpOWKwo45KUfIbxPyY9O+1qbG2FS
TPkTHHoKtoJbjgB+iD/tYtS8KuPsfEy7l1Pp3Tr7gST/Ds2BBytJrr6VKTdfLHc4rfYucAlNEDPo
74/Uur4g4i5HaZAvrc64fDIgtlaYjJ+B1frEV0vWSBdH71w1+auGRJeu+K5fMRA1wRFVbaz+jnMy
q7hunniHr47tzIh3Fz6Mqw+n1YeJ/8BbVVrFG0FcPrZUzAciGO9B+LCipLJc3hYB+vy19z3JNZ+l
2WvgfbdTed/l+0XZeXBBmeL9OPlzOg4NVPhfw9VHUCzUOk9g9gRmT2D2XwAz735PmPapmHYAL1do
2mbOO1Zp1RMJPiP40tBBDr9dAsds1ikWmV7n7Ecpv7/BdCkmmXBXD8JWLELxU7/3l+sUM04x3VuQ
/tXAHo/03MjJCd/fJxkK45XYvKbwjZsVJpZtx109CqXdhaR/CFSIBPsPo3Y45u8j7W/weYPWrHvP
3U3H6OEaYf9yDp2FNFsgW9ZyvLle833f7XfF/Mua3Cmv68LaYPg6xtUgjMWev68gfyvreqy2aZhJ
s7qp602l4+oK6YGS55Md607zqZCK77VYPA0d/PY+0oLWJ1f5X3WVPe3lt7X6HZa0s8ontE01+fX4
F4hC9n+USvSFfPDqiqaDwU4O08nktN1ZO5QUC7OgQ/5vnzT5kT18arJMWRzetFaMT9v5zobKDT+2
Ccq4UpDz9QOMPEGcYmGXMLmPyprSSS9BY+Xc308M0CYDomzAD2mQiF5jlPqJsfdxK4y2OtEZwbtv
365G/XH4fXq/TIjrndhgSXelctC+aHCdddt647HvrnPdlQ0FyHOX+NK/r+WDSPVilKQ7+TopWRQY
3let3p7IBVl/PZMSHLu/NGCgHZ4Ph/4tMF3a+k8OTPj7jy3G/nV2935r/ecI05o4/IHIEgHVShqt
XISr3sHcvnUK2+cL8H468Ifv8YtijRe7Hi6pzh4vqc73KKnuofn18uV9c+V64tcBjriH+X/RNXio
Y/AEjE/A+ASMT8D4+wdG///Hzn8Ar+Nndz85AAA=
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
