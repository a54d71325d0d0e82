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
H4sIAAAAAAACA+1XbW/bNhD+7l9xEIa8DNWb3byUa1pksdYGS5YgMTB0bWEw0lliI5IaSTvOtv73
gZQcyY6TZls/DXUQyrwXHvnc3UNZUI4EkF9hlpqy15v7pcxzJnICG823HkCm2AwVgU9aCn/CSuwB
yMowKTTpAQBwOvc1+wMJeDsR9+5k1tbKvF5Po5qxFJ2DmgrDOPpx7c04zZFAXqQqYDJc7CZszEgu
ywyFM1WoDVWGwFSUqLWvjawqzJwOxYwpKTgKU68LkJz+mAyPRifj07NhckIgwwmdlmZV+/bsckQg
CtzfqvL87GJEwNuP9iNv7bKX4+HxBYGQywxLvWqSnP40Pjl7QyCcURWWMr93Pj8OkE+CUuarvsPk
/OTs3Wnyy4jAd3+uE/ucMvF51e/N4Sj59fDdQ3FzavCG3gY0TVHrdYGPDo/eJuPL498SAl4cRdH9
o9cmF8nw+JKAwoxpEob1c3ew9yKscZzJcspRL/LhQygr0+6khowsnkq2dqu7JvckzraSynSW9+L+
nktjTPajfTc0W+fIxyXjzBCI+/WBM6xKebtwVqjlVKXtZp0I1Yx2Cr3+ZHhXyu3Hv2sTMWMZo0tK
gFROhY29KqYVvWIlMww1gfd5Nf3oLAqkpSnSAtPrRRiD2hB47x2dDr1n4AmZoX36bpygSYutzcKY
ioThEgpRqJBmt5vbgSlQbKmDV5WSLvM4Z2ZLBfL6dUTi7Wdb2yuqeHvb+9hEZ8JYLEoCcbQoclu9
cmoIDPQdiEa5kwwagWvXcYWKycwi3/javh3niqZ4pxvs6EVWUGR6LEWbGVtVvRZJkTGbEwINqYxd
lIYG7gjs+wWBdRin/41xHAxfm3H+J4TR/0YY3wijJox2iYYsasle8NynZcUEfpEdUsk5FZnNgPP1
bXBULgW+pjOXhnpGK3sEKcrbOlG1lNM5Ry6VE+7EfX61IvcrWbLUqWlZXuOt9ks1rY0qJQ2mBjOf
N3kX0ntqqdT7TUtmJxUT+X/LaqeVdp9H/GHUmzeTJdxFzsScxEF/758g7rwcEpUdHRekNC0wdJrQ
qVKnQpM2QjcGqRQTp87tmFHkUoCcTH5oQBBobqS6HltcCRRSmy9eBpbuk+H48Px4/HPybolaV1Sv
NZqH/IAJCFDMQODcgJFgCqbBvmN/Xs+dwb1zkbWn7fLowscgr0pqUHddWuEaD1t/XWM3/xcMvaaf
l38vPKGn7934T/B5qC16LWEfnQ47syuqi87UTzsTnGMKg5evwgxnoUmrlmHD/SiKYGMDKsWEmcDm
m2QEYR0c3o5G52EcRB/UB2H/N+HVxsAaF0gz8EUMLzcG8BfkCivwf4dN6EcRbH6l5uzv7D7SnJWS
HE2B02VetOKwo5v1g53nQX1tVUra8rQXlcelYEaqlkye2Mm+b0uU5YFd6cDVVxut8zW45WXDrUYq
mmNgdHYVKDQobNIDi8RBvJPVRjd4FZRMGxQ+zTKFWh+0l+CL6EX0eLev6bXlrZDHd7pojO5bRr4e
+78ByS7LhqQPAAA=
EMBEDCTL_COMPOSE_EOF
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
H4sIAAAAAAACA+0baW8rt/G7fsVg7cJ2oduy4yfXRV6Otg9Im4f3XpEAPQRqdyQx3iW3HK5sJXB/
ezEk95JkW7napLAMWNJyOOTcB6kjeIcqQYMJzDeA2RyT2KawMDoDi1meCos0UEup7v3/fqzV4hoM
9oybCFKRRZGAXgAm0kq1ZEwroZJ+56jC2ONpctmTyRQWk8sLIYbx+UdX2DmCVJJFNYVh3/1Nr4bD
YecICNNFb6XJYgK0EganMBr+hpehPJUWbnFDcPp17wMqoWzvTXINmBLC68KutJHfCiu1Cs9yNGDw
XwWSPescdY7gHabCyjVCLuyKYI6pvgODpNM1glgKJgrsCiE3uJD3sJRrVHAn7Qp6eRdIu0ESGcJC
pgimUASCQHSOQGnVM1pbSHUsUsiNjpEITivmFjn0em7wDIRKmIMyQYfRsRhirayQCk2/07nT5hbN
LGBBAlFYfd3JZeKB+7lMrjtojDazVC+BbILGwJ0w6rrTwTUqS/BdBwAgoIq1Uhgzdwgmw1eX152H
TmdlbR7A4lSisrO5TjYzVoEZ82jn6bWDzY2+b0LV3/34QpCNl7IB0XziYYo7akHU3/04tRFQPdsP
o1mjmVl9i4pALxZ+VoILUaR2Zjc5gsjzVMZOIwbfkFYe5BYxF6lc48zKDHVh4fKC/NARfFghJJJy
YeNV0I+VzgnsyuhiuQJ7p8FzPRdLBIOJNBhbglOnnl0Wp4KFSNO5iG/P+g6twbgwxCvWUwl4P244
1cvZQptM2MpuZrxdQIpFjjf82QHy6+S7iLcdTaNjfp9J0leXw1HUjTLCOJoe81s3Cmo/kwlDNr51
owztSrcehyfdk3qVqDCyCcJfuxFZYQuKpsf+QzdyRDNctXEmGxWvY3SKrSH3oBvFIk3RtEbCo9YG
SkTT6JhYBVlVZ/ezPQuV3H4UtALoRkVO1qDIZiJJ3B7aD9osKIdKshvQ4VHNaC+U4+bX/ciCHc5K
Ke4f2D93hSJhpd+e2ny+f6ZByrUi3J3bHmnNLolJUS3tqkGdf9CN5huLNGOeR9Pj+svDiTcnEbPz
cv5pkOB6QDZhc2spedPwnGNNpUICqUB4H6uV87O8O1joNNV3BKe93lJYvBObXqqXZ2A14H2ujXfe
PlAIlQTUpfgh1oWyaIjh3xrNao8FTd2kgA+k5QgEK0GgNAwytEbG1N+hZy3MINXLQUnMICDoe6A+
A20R2qCU/SmkMpMWMnY1SG4Tgc4TAn2n4FTAXC6XaDz4nS7SBLRKNzBnz7MoCBOeZvCsD5/oRCKF
JYRBmBeLhQvwdyudIsxxoQ16Ty3V0gUzAW+/fP8BYqE8xjwVG0bpw5zCe+seyliANmB1wO6jcxfm
hfXbYeiFNGRhfHF561ICEa+ALPNTQYaZNptrTyGShaVGJwPhcg0n5m7ATRqIna42kAqzRCjyVIuE
eJNKW8D7lShCkA4cP6GwQr8ZxzJx76MWyW8RrrLrnSDnGeTHed+7EGV8OB9SM+41J47Kec0hgvMx
XE62RqgaDlPHVy0I3rGLd8wPDzJsKU3Iil6/fXNCwO4qZAYGfV7m0hiWd0hNlFTLaUhvOD/TKkYQ
luVirFenkuvWcEZijVgsZAx3HMOkJfj0s79AptdIXZexCPjsL+9hJeO4yBnRnNMdr5YcVEMa45JI
t4ZUyzIAur0ZGF2+6o8vJn3/fg5rkcrk5nxIIPP15U0VxssJlQg4QofNvrdinmKdDk6dHnE2CN4P
dn32xyry+u0bBglPBGeEveDEQCZ+c5nI4diFDNHMIaEOT7e4mTFVDiCkS/yKIv/eiK/X1WDIRPah
9kAPW6uz9JmKmUwaazsyeQf71t2/w8f20Fig3EHT+TYS73kR36KFWGdI3rKdvzBCEiuSc7Kcm3vz
dxriE3Mn+4Ck8hcNzF1QyHrA7thz39PnrY4g2kN4BDvZRYMXXBzwAh5/TfpvofmkovSrlQbJ3iRN
nXW0/Yingc0nEzlB9AkKgwZ+d4ub30feY3ESA6d+v+yldI5GWG1CqncEf1W3ir23z2kIlmhhMhwd
qmsO/3c7EoyimjSp4rRI0O22DDs9/uKLtL3K9dhyfpdPLFhx7rWqaIVMbCB3Ibo0JqtdoHYVzenX
vc/L+u+dLiy6AL0UHKoA1zJBdkROVaQN2O9WwjrNqAL4NSy0AaE2jLcyaG/hLMIQAEuNIpmisukG
5FJpgw3b3spAp8fb6aHhPUYtGRR2nxB2Xgtt5jJJUNXCif79z7+J3rf/+O30OGrBeqJquJKZ04Z5
RK6w2VXmGriGc689Ou5kTvEKM2yQtKKqHnxSym8FcaHCfE7tytW2wWn6PCCWJi6khblBcYtmCuew
EDLFBITl4MWVkCtyuhBcdxnZL+7v2V4m41dnrqKWCi6IVYpDTZeTrTL8sNwvKJRSLH0u1kpNC9gM
9nKj55wp2n4IPKleElQpb6gQXYqhjTAy3XBlx7EjicoQ59bn4s2l82CQUw1pgzE3UJUyafAwRUHW
Ze21oMKao/FHrqsxml4Nr0bAkZ25RDeeW2VUuynrzsemjg+bWlW0cD6unx7BmyTFmohmAyBONbH3
9pw7IW+4IUdsZ6KMvOextyRa5WvsBDhHA2euIHlRj99bphExZymVq9DKOVLSLsY0FnOOOdVUpQ37
q/UqG3todgKagnGdpVZjqcmVz1k9KehMJm6dDrmk/zTIuFCGE1iXZoiFRcO1SCgiukBiww0cunNd
MCaggfzLHNXrN75FwDEyRyhjm0hZvTaQC0PICs81Cvzpw5+/AG4I1CQ3+gsXwzFcDM/hYjiBj4Or
902E633gk9E5fFyVoFrPXA4dMiffavDtELiBQTDxmm9bJU6VjFVjSRIqTWh4+E9CSPb8FOmd2NCj
895zNWV7H4xQxPVa7z23RqTdbLuqfXgM2sIoGA+H3AWpinLNdX2ss1wrV4hGbifuGfceo2nU7Dxy
FwPTxZ+cpN+iid2c0fDh7+qkXu6h05ApZ0dOweciFSpGc0Klf4xXGN/CaW70WhLztdfLpBr0epm4
P5u6rfqsu9LxOa4kp9orSY0lqurT+6BN1Wt8/cUnPskiVFwFBV2y2jVgeTdcOQrrijhnCTwt6++V
uNe/wwXu65JcEAHHzOlgsC841ZCMv5Wx72Fncz9VCPY95tBU+T4aye2A2mW2BxNUG4ZoPyVbzMNC
z+5vPfLlfSLVcmdbP94Yvu6986bae5M0a4if1Yha3uIKbuDjx2TagnzFkM9BjYdtfLNcKvXkhEmN
9lngR3xbE/wIPmWD5ArGhzKhNpxpLNmwWEclJlP2ukUrSS8DFTt9pLJ+OS07SDV2D7dE69s1AZCL
M6m+wdhictZvTZELON3K7W8gis62lGlLwF999VWPzzNQWW5fI5yEQsSgSLObqEQYnewV8Y9Rz4af
nQxH7GedCKLpd1GGRGLJzcPqSCO4rSlkklxlqE3F2lB6XzvP1T6emUJZWJV+zxVY3Yi79tE0ksr1
BWaltP0W2KEnzWGRS1cfPrR9d13+PCYFzu5v6uR9nzQqHpwfzIPtqgdOmyW1NkFdzlgXV1rpgptz
zrcvGnWkq+oOZoWjZVZR8kNZUZvsU7wYD78/5gOwTg7HWpb/h+54dPUU7grq1dORYPATuf5KpyYH
6pQP6OS7tFvRiPtxf/z8Q5nG1RqjtJ0tdKGSbWXYR9quQ/2JaR0dbj++PexrBNfwlgSa/e1VFpzI
Ajnndom1Ntal33lhqXnOe7jlbBN+ELtaKfj/SUYQRMWlxqGiUhpKU4xd+zeUQ6el/Bp7P6tFUp05
FUqshUy5wDqI7Xvr7x+SobrWzxqNy9VH2xmjhyG0JV8/rUrmVgNuLyxXFHDMSz8D+JiQn532B23u
hEkw4U9w7CFYC+45Avgh/vQsoko5P/Xpz3Y7cB+C5ukkp/dj2r+MSnYL9SeqhB2YI+/tJLkCWSbc
vbHca7Xa29A1NL2gQX+SpTbVURW3SQqDfHx2wfWXAbG1wmT8CqzWZ77cska6QLxz6OUPPdyhITVu
h4gK4ITKPlh/D52MalZ1X7zHKMl2esi7Cx/G5Yfz8sPEf+CtKq1mNSOun1tqxgQRjA8AfFpQkg9L
Y8yD7/Q3Fh7JzpmWZrOC992uBXyb8Eel98GGZYKPO9rv07JouJVnHXNtM66r0LrN9Itz68840VBq
vfjSF1/64kt/jb7U2++LS/3fuNQj+HyNpm0kTK9Kyo5QsDjBR6bO4/ElHThlo0gwT/UmYytM+BoM
wyUYp8IdvAhbogilX3XfNNMJppxgu9u3/kpqj0d6buTsjK9BxCkK41WgeUjj21ZrjC1rnjt4FUq7
41j/ECgXMfafDhqBzP+PoqeB5x1as+m9duc8o6crpMOLWXQa0mwAbWnLaX246Lve23cL/SVhPieo
quJKYfgwylVg7Mk9fl8//1za9Vxl11CTZm1XVdtK15cwH544avmBhrXTesul4lM9Zk9DBj+/jbQc
84up/FJN5UB9+Xm1fo8m7e1xENqmmPx6/AYil/1vpBJ9IZ88uKPpYLAXw3QyOW/3FY8lzYRZ0jH/
OyRLf2YPPzRXp3QWbvgr9k/b2VIN5Yaf2wSlXKjIxeYJRB5glmBuVzB5DMqawnEvRmPlwp/ODNDG
A6J0wA9pEIteY5T6sbGPYcuNtjrWKcGHL96vR/1xeD9/nCfE5dbMYEG7XDlqH7O4cwXbujjad4fZ
7sCKgstzVxikv/bmg0h5v0zSTrZPSuY5hmu/5d2RTJD1h1MJwan7hQs72uHlcBiucBe2+qmLCb87
2kLsf0bhrglXP4OZVsDhh0krBFRrabRyEa68yrp95ha2z8f//WTgie/xBbjG/binC7KL5wuyywMK
skdgfrps+7+TaVez/1BepFf619HyeKrd8eJWX9zqi1t9casvbvVpt+r/P3T+A+XEHqczPAAA
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
