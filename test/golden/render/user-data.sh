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
H4sIAAAAAAACA+1WW2/bNhR+9684EIZchupmN03KNS262GuDJUvQ+KVrC4ORjiUuvKgk7Tjb+t8H
UnIkO06aYXuMDVPmuZA83znnoyQVSADFJeaZ5b3eIuSqKJgsCGw1/3oAuWZz1AT+MEqGU8axB6Aq
y5Q0pAcAIOgiNOxPJBDsJSK4lTlbJwt6PYN6zjL0DnomLRMYprU3E7RAAkWZ6YipeHmauDEjheI5
Sm+q0ViqLYGZ5GhMaKyqKsy9DuWcaSUFSluvCzA6/Xk0PBqfTE7PhqMTAjlO6Yzbde37s4sxgSTy
33Xl+dmHMYHgIDlIgo3LXkyGxx8IxELlyM26yej0l8nJ2TsC8ZzqmKviTnxhGqGYRlwV677D0fnJ
2cfT0W9jAj/8tUkcCsrkt3W/o7dH70eTi+PfRwSCNEmSuyevTT6MhscXBDTmzJA4rp8vBvsv4xqG
ueIzgWYJZwixqmwbQB0xWT61au3WgyV3JN62Utp2lg/S/r7PQkoOkgM/NEcXKCacCWYJpP0aqBwr
rm6WzhqNmumsPawXoZ7TTp3WnxxvK7H9hLdVLucsZ3RFCZCpmXR7r4tpRS8ZZ5ahIfCpqGZfvEWJ
lNsyKzG7Wm5j0VgCn4Kj02HwDAKpcnTP0I9TtFm5s11aW5E4XkEhiTXS/GZ7N7Ilyh19+LrSKkNj
Ilwwu6MjdfUmIenus53dNVW6uxt8aXZn0josOIE0WdaoKz41swQG5hZEq30kg0bgu21SoWYqd8g3
vq7tJoWmGd7qBntmmRWUuZko2WbGVVWvRVLmzOWEQMMJE79L08W3/PPjkn86hNF/IgwPwxNhbCSM
/hNhPBFGTRjtEg1Z1JL96HlIecUkfpcdMiUElbnLgPcN3eaofQpCQ+c+DfWMVi4EJflNnahaKuhC
oFDaC/fSvrhck4eV4izzasr5Fd6YkOtZbVRpZTGzmIeiybtUwWNLpT5vxpmbVEwW/y2rnVZ68TwR
96NeUIvX9GYFd1kwuSBp1N//N4h7L49E5UbPBRnNSoy9JvaqzKvQZo3Qj1Gm5NSrCzfmFIWSoKbT
nxoQJNprpa8mDlcCpTL2u5eBo/vRcPL2/Hjy6+jjCrWuqd4YtPf5AZMQoZyDxIUFq8CWzIB7Rf62
mTujO3GRjdF2eXTpY1FUnFo0XZdWuMHD1V/X2M8buw09uvoK/4g+vXOLP8LnvlLvtSR8dDrszC6p
KTvTMOtMcIEZDF69jnOcxzarWtaMD5Ikga0tqDSTdgrb70ZjiOvN4f14fB6nUfJZf5butw2vtwbO
uESaQyhTeLU1gL+h0FhB+BW2oZ8ksP0/NVx/78UDDVdpJdCWOFvlOieOO7p5P9p7HtVXUaWVKzl3
+QRCSWaVbgnikd0Zhq7sWBG5lQ59zbS7df5GN4I3fGmVpgVG1uSXkUaL0iU9ckgcpnt5bXSNlxFn
xqIMaZ5rNOawvdheJi+Thzt4Q/+sHoU8fNJlsXffHIrN2P8DtNTfMjcPAAA=
EMBEDCTL_COMPOSE_EOF
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
H4sIAAAAAAACA+1be28bNxL/X59isPbBdqG3ZdeRz4cmaXoN0GuDJIcUuMeCWo60rHfJPZIrWw18
n/0wJHe1K8m2+si1d7AMWNJyOCSHM795kDqAtyg5auQwWwHmM+SJzWCuVQ4W8yJjFs1ALoS89f/7
iZLzS9DY064jCGksMg5qDsiFFXJBnFImeb9zUHPsUTex6Ak+heRiOHmGn59N+OmwcwCZMBblFIZ9
9ze9GA7pscFs3kuVscjBpEzjFEbDP9AwpsiEhWtcGTj+vvceJZO295pfAmYG4XlpU6XFj8wKJcOz
AjVo/FeJxp50DjoH8BYzZsUSoWA2NTDDTN2ARqOyJQJbMFoU2BSh0DgXt7AQS5RwI2wKvaILRrlG
w3KEucgQdCkNMAOscwBSyZ5WykKmEpZBoVWCxsBxLdyygF7PNZ4Ak5wkKDg6jk7EkChpmZCo+53O
jdLXqOPABQ2w0qrLTiG4J+4Xgl92UGul40wtwFiOWsMN0/Ky08ElSmvgYwcAILBKlJSYkHQMTIbP
zi87d51Oam0RyJJMoLTxTPFVTCoQk4y2nl462kKr2ybV+rtvnzNjk4VoUDSfeJryxrQo1t99u2kz
MOvevhn1EnVs1TVKA2o+9704zlmZ2diuCgRWFJlInEYMfjBKepJrxIJlYomxFTmq0sL5mfFNB/A+
ReDCFMwmadCPVBUGbKpVuUjB3ijwUi/YAkEjFxoTa+DYqWeXtlPCnGXZjCXXJ33HVmNSakMjrrsa
oPm45kwt4rnSObO13cQ0XUCTsAKv6LMjpNfRx4imHU2jQ3qPhVEX58NR1I1yg0k0PaS3bhTUPhac
KBvfulGONlWtx+FJ92g9SlRq0SShr93IWGZLE00P/Ydu5BZNdPXEadkoaRytMmw1uQetQSriaXRo
SM1IHePbeAezsjBWI8tjxrkm+vaD9tSrpmq6DerwaC0gL8zD5tfdzIL9xJX0dzfs7psi46Ssm12b
z3f31GgKJQ1u9223tHpXi8lQLmzaWJ1/0I1mK4smJpFH08P1l7sjbwYsIdBxuDLguBwYy8lMWsoZ
dNdbDMEDZCIXFnKyHDQO1nQpaXJHBtSNhGMGM7FYoPbkN6rMOCiZrWBGhjQvDXLqpvGkDy8UF2jC
EEwjzMr53Pmrm1RlCDOcK40eeIRcOGxm8Oa7d+8hYdJzLDK2IpYetSXeWvdQJAyUBqsCd+9sujAr
rZ8OUc+FNhbGZ+fXzsOxJAVj2QqEhBxzpVeXfoVoLCwUrZfGJ3xynqEbeBsFhjBEaciYXiCURaYY
NzRJqSzgbcrK4HMWzOINWx2ZMEK/Ccs5u/UgbMSPCBf55RZmewH5dpr3NkUFd6dD04TxZsdR1a/Z
ZOB0DOeTjRZTN4eu44sWBc3YwTfJw5MMW0oTnPzzN6+PDJAVB0en0YcZzivTfgdPK4VcTIO3pnBD
yQSBWdoXbb06VVK3mhys1Ww+FwncECQLa+Dll99CrpZous4BM/jy23eQiiQpC2I0I+/t1ZJ8RPDK
LiZyYwi5qPDczU3D6PxZf3w26fv3U1iyTPCr06EBUSzPr2qvVHWot4AcTpjsO8tmGa6jm6nTIwpu
wMND1wczpCLP37wmkvCEUYDTC7YNgvvJ5ayAQwekrBkSwRqHr3EV06ocQfD+9Ioi/95wF5d1Y3Cs
u1h7oruN0Wn3aRWx4I2x3TJpBrvG3T3D++bQGKCaQUO7mnHkrEyu0UKicjTesh1eaCYMKZKL6SjU
9ObvNMTHmW7vA5MaLxqcuyCR9ID8lJe+X5+3OgPRjoVHsOUsG7KgWJcG8PzXS/8Mmk/qlX5IFQhC
kyxz1tHGEb8GMp+cFQaiF8g0avjjNa7+FHnEIp8Mx36+hFKqQM2s0iFyOYC/ymtJ6E1DEBQs0MJk
ONpX1xz/j1s7GEXrpQmZZCVHN9tBmHyPvvico73g57KeIuRsBYWQtIpgA1aBkggurj7+vveqykLe
qtLiCTUvGHkYwKXgSPjhdljYwP0mZdZtqFMJ2rFLmCsNTK6Ib22H3jBJ8sFvVYpgRIbSZisQC6k0
NkxyIw6aHm7GOprmGLVEV9pdstt6zZWeCc5RrmUa/fuff2O9H//x2fQwatH6Ra3pKmFOG1odufB6
WwfXxGs699qhmk4zTJJijo0lpabOSnZpQ73Lb5ihcJnknNnUZVgB67z7ToROSmFhppFdo57CKcyZ
yJADs+RzKB53oXYXAuJWDvns9pbUfDJ+duLyOiHhzJBKkYfoglS116B9PzMhoKfdp5Sh0rTATWOv
0GqGBoTtB3+RqYWBOoALeYqLDJRmWmQryi8I8nlUeSY3PqUQLjgFjRQhCBtssMGq2pOGDDNkxroY
dL1RYczR+HOXW4+mF8OLEZBDJimZKy+tyhldVdnPfV3H+3Wt8yo4Ha+fHsBrnuF6Ec00NMmUIdD1
kjsy3nBDaNcOIIl5z3Nv7WgdZhEIUGgFzlxB0KCev7dMzRIKLmqoUNLhn1HONTQGc3iaKVN7+905
Yx1E3TXz0ebGuPpGq7zRlMorUk8TdCZn106HaIfhOOxxKTXFnS46YHOLGlidWHbBsBWVEcyNq8XQ
AhrMvytQPn/tE1VybQVC5ZJYRuq1goJpg6TwlsT19fu/fAOUlq6X3Mhyz4ZjOBuewtlwAl8EhPap
7OUu8snoFL6oEyqlYhf6hoDHJ7w+KYcrGAQTX8ttIwGpY6i6jfOQN0ED4V8ET+rlybIbtjL39ntn
tUhs771m0hRK2947StCFXW1C1S4+Gm2pJYyHQ8rF6xRTXUfdKFF5oaRLqyI3E/eMKmDRNGrWvyiX
xmz+tdvpN6gT12c0vPu7PFoPd9dp7CkFNU7BZyxjMkF9ZCp8TFJMruG40GopDMm118uFHPR6Obs9
mbqp+mC51vEZpoIi5FSYxhBha71fY3xVV7yef/PCx0YGJSUvQZescmVAmg0lfMy63MtZAnXL+zt3
3Ovf/hvu04mCGQPkM6eDwS7ntKYk/q1Ae4c4m/OpXbCvdIYSwU/RyIxSvBoy240c5Yoo2k+NLWdh
oEfntxwN3Ay5kIutaf1yY/i+99abau81b4b+n9SIWmhxAVfwxX172qJ8RpSPUY2HbX5xIaR8sMNk
zfZR4nuwrUl+AC/JICnx8K6MyRVFGgsyLNJRgXxKqFu2YuvKURHoo6nSjmMm+QZ3T7dA66ssgZBy
KiF/wMQiP+m3uog5HG+E5FcQRScbyrSxwR8+fOhRVR2lpSIqwlHIHzSyLL+KKobR0c4t/iXq2cDZ
yXBEOOu2IJp+jHI0hi2oFFYX1gNsTSEXxiV0SteiDRnzpUOu9iHBFKp8qMI9lxd1I6odR9NISJfO
x9Vu+ykQoPNmMyuES+vu2ti9Tonv2wWK7q/Wwfuu3ahlcLq3DDazHjhuZsJKB3U5IV1MlVQl1dQc
ts8b6Z9LxvYWhVtLXK/k54pibbIPyWI8/Omc9+A62Z9rlbXvO+PRxUO8a6pnD3uCwa8E/bVOTfbU
Ke/QjS+ubngjKqP9+dX7Koxba4xUNp6rUvJNZdi1tG1A/ZXXOtrffnxV1+cIrk4tDCjC24s8gMgc
KeZ2gbXS1oXfRWlN87Rxf8vZXPhe4mqF4P8nEUHYKko19t0qqaAyxcRVbUM6dFztX2PuJ+stqU9Q
SsmWTGSUYO0l9p3598+JUF3pZ4naxeqjzYjR0xi0lVxf1ilzq262k5YyCjikoR8hvG+TH+32ldI3
THPk9AkOPQVpwS15AN9En3Yxah6VUXQ+NruHk3w7z34gyN+iOfBgJYzLbwWn4oulCqdV3gQuoQli
Gv35kVzVB0RU5Sg10qHVGaVPGtjGCJPxM7BKnfhsyWrh/OjWUZM/akhU6ZLv+ooBqwmOTFXG6u9Y
J7GK6+KJN/hq2U6NaHbhw7j6cFp9mPgPNFWpZLwWxOVjQ8W0IAPjPQgf3ighLaW3RYA+f+x9T3BN
a2nWGmje7VDeV/l+UXQeTFBwvB8nf0rFoYEKj+Jq3fmlKwq0rsT87lD5EQwMmdITFD5B4RMU/gZQ
6M3vCRF/G0Q8gFdL1G0jofVKXtVjgsUxOrB0gEU3W+CYjIJjkalVTlbI6e4I0XFMMuaOPZitWITE
q75zmCuOGYW37gamv5bYo5aeazk5obsDSYZMexVoHpH4otESE0ua5449mVTuMNQ/BFOwBPsPY35Y
5v9HytHg8xatXvWeu1OW0cP5yf6pJDoNaZZfNrTleH2052vOm/fU/EVRqtLXOWmtMHQU5PIfQnLP
32evn0q7HsurGmrSzKzqXFequDq+eiDd+tmGtVX4KoSkMzUST2MPPr2NtID5yVR+r6ayp758Wq3f
oUk7KwwGbXOb/Hj0BqwQ/R+EZH0mHjw2M9PBYCeH6WRy2q7qHQoTM70wh/RvnyD7kTn83FDbZHG4
5S0JnzajpTWVa35sEiajPEPMVw8w8gQxx8KmMLmPyurSSS9BbcXcn40M0CYDY7IBPTSDhPUaraaf
aHsft0IrqxKVGXj/zbvlqD8O76f3y8RQthRrLM22VA7ahxyuqm9bty377ijZHReZAHnuAoHwd8W8
E6kuZQmzFe0bKYoCw13Z6uZGzoz1R0PcwLH7lQMB7fB8OPQ30FRp65876PDbkw3G/iq9u1tb/xRi
WhOHH6ekCCiXQivpPFx1/3PzxCtMnw7f+3zgF9+jS2qNS2UPJ2Rnjydk53skZPfQ/HrR9n8n0q57
fxXAjKqv/xMVi4eqFU+w+gSrT7D6BKtPsPowrPr/d53/ACPpzac3OgAA
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
