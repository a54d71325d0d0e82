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
H4sIAAAAAAACA+1be28bNxL/X59isPbBdqG3ZdeRz4cmaXoN0GuDJIcUuMeCWo4k1rvkHsmVrQa+
z34YkvuSZFt95K49WAYsaTkcPmbmNw9SB/AWJUeNHGZrwGyGPLEpzLXKwGKWp8yiGciFkLf+fz9R
cn4JGnvadQQhjUXGQc0BubBCLojTkkne7xxUHHvUTSx6gk+Bfz4+S2afs3OcTToHkApjUU5h2Hd/
04vhcNg5AIPpvLdUxiIHs2QapzAa/oGGMXkqLFzj2sDx9733KJm0vdf8EjA1CM8Lu1Ra/MisUDI8
y1GDxn8VaOxJ56BzAG8xZVasEHJmlwZmmKob0GhUukJgC0aLArtEyDXOxS0sxAol3Ai7hF7eBaNc
o2EZwlykCLqQBpgB1jkAqWRPK2UhVQlLIdcqQWPguNrcIodezzWeAJOcdlBwdBzdFkOipGVCou53
OjdKX6OOAxc0wAqrLju54J64nwt+2UGtlY5TtQBjOWoNN0zLy04HVyitgY8dAIDAKlFSYkK7Y2Ay
fHZ+2bnrdJbW5oEsSQVKG88UX8ekAjHt0dbTS0eba3XbpKq/+/Y5MzZZiAZF84mnKW5Mi6L+7ttN
m4Gpe/tm1CvUsVXXKA2o+dz34jhnRWpju84RWJ6nInEaMfjBKOlJrhFzlooVxlZkqAoL52fGNx3A
+yUCFyZnNlkG/Viq3IBdalUslmBvFPhdz9kCQSMXGhNr4NipZ5fEKWHO0nTGkuuTvmOrMSm0oRHr
rgZoPq45VYt4rnTGbGU3MU0X0CQsxyv67AjpdfQxomlH0+iQ3mNh1MX5cBR1o8xgEk0P6a0bBbWP
BSfKxrdulKFdqtbj8KR7VI8SFVo0SehrNzKW2cJE00P/oRu5RRNdNXFaNkoaR6sUW03uQTdKWJqi
brWER60JlIym0aEhFSRVjW/jHQMVubEaWRYzzh3f9oP2ssqmcikN6vCo3jy/0YfNr7uZBduKS8ns
btjdd4mMkyJvdm0+391To8mVNLjdt93S6l0uJkW5sMvG6vyDbjRbWzQxbXk0Pay/3B15E2EJAZLD
nAHH1cBYTibUUtyg196aCDogFZmwkJFVoXGQpwtJkzsyoG4kHDOYicUCtSe/UUXKQcl0DTMysnlh
kFM3jSd9eKG4QBOGYBphVsznzpfdLFWKMMO50uhBSciFw20Gb7579x4SJj3HPGVrYukRXeKtdQ9F
wkBpsCpw946oC7PC+ukQ9VxoY2F8dn7tvB9LlmAsW4OQkGGm9PrSrxCNhYWi9dL4hF3Oa3QDb6PA
EL4oDSnTC4QiTxXjhiYplQW8XbIi+KMFs3jD1kcmjNBvQnbGbj1AG/EjwkV2uYXnfoN8O817m6KE
wtOhaUJ8s+Oo7NdsMnA6hvPJRoupmkPX8UWLgmbsoJ32w5MMW0oTAoDnb14fGSArDk5Qow9BnMcm
eQcvLIVcTIMnp1BEyQSBWZKLtl6dyl23mpyv1Ww+FwncEFwLa+Dll99CplZous45M/jy23ewFElS
5MRoRp7dqyX5j+CxXbzkxhByUWK9m5uG0fmz/vhs0vfvp7BiqeBXp0MDIl+dX1Ueq+xQiYCcUZjs
O8tmKdaRz9TpEQU+4OGh6wMdUpHnb14TSXjCKPjpBdsGwf3kMpbDoQNS1gyXoEbia1zHtCpHECID
ekWRf2+4ksuqMTjdXaw90d3G6CR9WkUseGNst0yawa5xd8/wvjk0Bihn0NCuZow5K5JrtJCoDI23
bIcXmglDiuTiPQpDvfk7DfExqJN9YFLhRYNzFySSHpCf8rvv1+etzkC0Y+ERbDnSxl5QHEwDeP71
0j+D5pNqpR+WCgShSZo662jjiF8DmU/GcgPRC2QaNfzxGtd/ijxikb+GYz9fQimVo2ZW6RDVHMBf
5bUk9Pbu28ACLUyGo311zfH/uCXBKKqXJmSSFhzdbAdh8j364vORncp133B+lg8MWO3cc1mtFTK2
hlxI2o5gTFaBkggueD/+vveqTHXeqsLiCTUvGLkqwJXgSEDkVEXYwP1myazTDKdbJPpLmCsNTK6J
b2XQ3sJJhMEBlhplRIrSpmsQC6k0Nmx7I9iaHm4GTZrmGLVkUNhdQth6zZWeCc5R1sKJ/v3Pv7He
j//4bHoYtWj9omq6cjOnDfOIXAy/rcw1cU3nXjt03MncJEvMsLGkpalSnwel/IYZislpn1O7dGlc
AE0fByRCJ4WwMNPIrlFP4RTmTKTIgVlyXhT0u3i+CwG6S89+dntL9jIZPztxyaOQcGZIpcjVdEGq
yv2Q3M9MyBpI+pSXlJoWuGns5VrN0ICw/eB4UrUwUEWCIRlyIYbSTIt0TUkM+Q4elS7OjU95ioty
QSOFGsIGY26wKmXS2MMUmbEumK0FFcYcjT93CfxoejG8GAF5dtolc+V3q/RqV2WKdV/X8X5dq+QN
Tsf10wN4zVOsF9HMdZNUGUJvv3NHxhtuiBHbkSgx73nuLYlW8RqBAMVo4MwVBA3q+XvL1CyhKKWC
CiUdkBrlfExjMAfMqTJV2LA7Ma2isbtm0tsUjCuitGoozV15Reppgs5k7NrpEEkYjoOMC6kpgHVh
Bptb1MCq7LULhq2pVmFuXMGHFtBg/l2O8vlrnw2Tj8wRSt/GUlKvNeRMGySFt7RdX7//yzdAuW+9
5EYqfTYcw9nwFM6GE/giQL3Ply93kU9Gp/BFlZkpFbsYOkROPqv2mT9cwSCYeL1vG5lMFYxVbZyH
BAwaCP8iuGS/nyy9YWtzb793VovE9t5rJk2utO29oyqAsOtNqNrFR6MttITxcEgJf5WrqmvKn1WW
K+nys8jNxD2jMls0jZpFNkrYMZ1/7ST9BnXi+oyGd3+XR/Vwd52GTCk6cgo+YymTCeojU+JjssTk
Go5zrVbC0L72epmQg14vY7cnUzdVH3VXOj7DpaBQeylMY4ggWu/XGF9XZbXn37zwQZZBSVlQ0CWr
XK2RZkOZI7MuiXOWQN2y/k6Je/3bX+A+L8mZMUA+czoY7HJONSXxb0XsO7azOZ/KBftyaqg1/BSN
TClXrCCz3chRromi/dTYYhYGenR+q9HAzZALudia1i83hu97b72p9l7zZg7xSY2ohRYXcAVf3CfT
FuUzonyMajxs84tzIeWDHSY120eJ78G2JvkBvCSDpAzGuzIm1xRpLMiwSEcF8imhbtEK0ktHRaCP
psxfjpnkG9w93QKtL9cEQkrOhPwBE4v8pN/qIuZwvBHbX0EUnWwo04aAP3z40KPSPUpLlVqEo5CI
aGRpdhWVDKOjnSL+JerZwNnJcEQ460QQTT9GGRrDFlRTq6r3AbamkAnjMkOlq60NqfelQ672ScQU
ysSqxD2XYHUjKlBH00hIVxeIS2n7KRCg82Yzy4XLD+/a2F2nP/dJgaL7qzp43yWNag9O996DzawH
jpsptdJBXU5IF5dKqoKKcw7b54080mV1e2+FW0tcreTnbkVtsg/txXj40znvwXWyP9cy/d93xqOL
h3hXVM8e9gSDXwn6K52a7KlT3qEbX6Xd8EZUj/vzq/dlGFdrjFQ2nqtC8k1l2LW0bUD9ldc62t9+
fHnY5wiu4C0MKMLbiyyAyBwp5naBtdLWhd95YU3zSHN/y9lc+F7b1QrB/08igiAqSjX2FZVUUJpi
4sq/IR06LuXXmPtJLZLqKKaQbMVESgnWXtu+M//+ORGqK/2sULtYfbQZMXoag7bc15dVytwqwO2k
pYwCDmnoRwjvE/Kj3b5S+oZpjpw+waGnIC24JQ/gm+jTo4wq5Xzpw5/NcuAuBs1DOwrvx2b3MJJv
J+oPZAlbNAce7YRxCbLgVL2xVGu1ytvQJTRRUKM/yZLr6qiKyiSFRjo+O6P8SwPbGGEyfgZWqROf
blktnCPeOvTyhx6JKlz2Xl2EYBXBkSnrYP0d6yRWcVV98YhRLtvpIc0ufBiXH07LDxP/gaYqlYzr
jbh8bKiYFmRgvAfhw4IS0lJ+nAfs9Ifz90TntJZmsYLm3c4FfJnwF4X3wYYFx/uB9qeULBqw8igw
1zbjqgqtizu/OVh/BERDqvWEpU9Y+oSlv0cs9fb7BKn/G0g9gFcr1G0jofVKXlaEgsUxOjJ1iEeX
dOCYjIJjnqp1RlbI6RoM0XFMUuYOXpgtWYTUr7pamSmOKQXY7qKpv33Zo5aeazk5oWsQSYpMexVo
HtL4stUKE0ua5w5emVTuONY/BJOzBPsPO42wzP+PpKfB5y1ave49d+c8o4czpP2TWXQa0iwAbWjL
cX246Kvem1fu/H1YOieosuJKYegwymVghOSev8+fP5V2PZbZNdSkmdtV2bZUcXmA9kDC97MNa6v0
lgtJp3q0PQ0ZfHobaQHzk6n8Vk1lT335tFq/Q5N21jgM2qaY/Hj0BiwX/R+EZH0mHjy4M9PBYCeH
6WRy2q4rHgoTM70wh/Rvnyj9kTn83FjdpHG4zC4JnzajpZrKNT82CZNSoiLm6wcYeYKYY26XMLmP
yurC7V6C2oq5P50ZoE0GxqQDemgGCes1Wk0/0fY+brlWViUqNfD+m3erUX8c3k/v3xND6VassTDb
u3LQPmZx5wq2dXG07w6z3YGVCZDnrjAIf+3NO5HyfpkwW9G+kSLPMVz7Le+OZMxYfzjFDRy7H3MQ
0A7Ph0N/mU4VtvpVhw4/sdlg7H8x4K4JV7/4mFbE4Tc4SwSUK6GVdB6uvMq6eeYWpk/H/30+8Ivv
0QW4xv24hxOys8cTsvM9ErJ7aH69aPu/E2lXvb8KYEb1399FyeOhcscTrD7B6hOsPsHqE6w+DKv+
/13nPwup64keOwAA
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
