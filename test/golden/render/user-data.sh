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
GATEWAY_KEYS_PARAMETER=/embedctl/main/gateway-keys
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
H4sIAAAAAAACA+1XbW/bNhD+7l9xMIa8DNGb3SQO17TIYq0NlixB4mHL2sJgpLPERiQ1knadbf3v
Ayk5kh2nzV6+bKiDUOa9kHfP8R7KgnIkgPwG08QUnc7cK2SWMZER2Ki/dQBSxWaoCLzXUngTVmAH
QJaGSaFJBwCA07mn2W9IoLsb8u69zNpaWbfT0ahmLEHnoKbCMI5eVHkzTjMkkOWJ8pkMFtEEtRnJ
ZJGicKYKtaHKEJiKArX2tJFlianToZgxJQVHYap1AeKzb+Ph8eh0fHY+jE8JpDih08Ksal+fX40I
hL77W1VenF+OCHQH4SDsrl32ajw8uSQQcJlioVdN4rPvxqfnrwgEM6qCQmYP8vMiH/nEL2S26juM
L07Pr8/iH0YEvvp9ndjjlImPq36jyx+vRvFwfHF5/vM1gW7U23e5RTuERDvRfs+P9qwgiHo70YGd
Darp3k5UoxAMHiT76mgU/3R0/Vg2GTX4gd75NElQ63XpHB8dv47HVye/xDamMAwfAlqZXMbDkysC
ClOmSRBUz73+/kFQVWcmiylHvaiyB4EsTRNJVQiyeCrZ2K1GTR5InG0plWkt3wBIBuHADXXoHPm4
YJwZAlGvSjjFspB3C2eFWk5V0gTrRKhmtNU+1SfF+wZpPt5984kZSxldUgIkcirs3qtiWtIbVjDD
UBN4k5XTd84iR1qYPMkxuV1sY1AbAm+6x2fD7g50hUzRPj03TtAk+dZmbkxJgmAJhTBQSNO7zW3f
5Ci21OGLUklXeZwzs6V8efsyJNH2ztb2iira3u6+q3dnwlgsCgJRuGgd2xNyagj09T2IRrlM+rXA
kcC4RMVkapGvfS0bjDNFE7zX9Xf1oiooUj2WoqmMPVWdBkmRMlsTAjVVjd0uNbnc0+LXC1ps8Vjv
C485GP4bPPY/oaHeFxr6QkMVDTVL1BRUSfb9Zx4tSibws5yTSM6pSG0FnK9nN0flSuBpOnNlqGa0
tClIUdxVhaqknM45cqmccDfq8ZsVuVfKgiVOTYviFu+0V6hpZVQqaTAxmHq8rruQ3acelSrepGB2
UjKR/bOqtlpp71nIH0e9ft9Zwl1kTMxJ5Pf2/wrizsshUdrRcUFCkxwDpwmcKnEqNEktdKOfSDFx
6syOKUUuBcjJ5JsaBIHmg1S3Y4srgVxq89krxl4i8XB8dHEy/j6+XiLsFdVLjeYxP2ACfBQzEDg3
YCSYnGmwvwc+rudO/0FeZG22bR5d+BjkZUEN6rZLI1zjYc9f29jN19jpsmCmbbjgZ6/S/A1SX0MB
yz+HnkADD149nuDzWCd1Go4/Phu2ZjdU562pl7QmOMcE+s9fBCnOApOUDSkHgzAMYWMDSsWEmcDm
q3gEQbU5vB6NLoLID9+qt8L+b8KLjb41zpGm4IkInm/04Q/IFJbg/Qqb0AtD2PyX+rm3u/eJfi6V
5GhynC5TqRUHLd2s5+8+86ubrlTSnmh7t3W5FMxI1fDPE5vf8+ypZplvVzp0J63ZrfXVv+NFTcdG
Kpqhb3R64ys0KGzRfYvEYbSbVkYf8MYvmDYoPJqmCrU+bO7Ng/Ag/DRBrGnP5VDIpyNdNEb7xSRb
j/2f7OCL1YMQAAA=
EMBEDCTL_COMPOSE_EOF
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
H4sIAAAAAAACA+1be28jtxH/X5+CWDu4u8B6v+W6uCRI2gAFmt4dkAB9LOjdkcR6RW5Irmzl4H72
guQ+OKuVJft8aZvaBiSRMxz+OCSHM8PdM/IOeAwSYnK9I7C5hjjSCVlKsSEaNmlCNaguXzF+5z47
keDLSyKhLW1DwrjSQGMilgRiphlfGUlryuNO66yU2DbN2KrN4gUZTacwj3oxnU4HrTOSMKWBL0iv
Y/8Xs16v1zojCpJley2UhpioNZWwIP3eF6YblSZMkxvYKfL6p/YH4JTr9vfxJYFEAfkq02sh2S9U
M8HzuhQkkfBzBkq/IRnXLCE0F8MUuZVMa+A+Wktrx0wuSBd0lCsAk1tnrTPyDhKq2RZISvVakWtI
xC2RoESyBUJX1GiH6DWQVMKS3ZEV2wInt0yvSTu9IEpYoqIbIEuWAJEZV4QqQltnhAvelkJokoiI
JiSVIgKlyOtylrKUtNuW+IZQHpupYDFYiRYwiQTXlHGQnVbrVsgbkGEuBRShmRaXrZTFjrmTsviy
BVIKGSZiRZSOQUpySyW/bLVgC1wr8rFFCCG5qEhwDpFRsyKj3nxy2bpvtdZapzlblDDgOrwW8S40
ayk0OtqrvbS8qRR3PldVdvQlVTpaMY/Dr3E82a1CHFXZ0RUWoKrWjgxyCzLU4ga4ImK5dK1iWNIs
0aHepUBomiYsskur+08luGO5AUhpwrYQarYBkWkyGStHkhBlUhmS02xKV6CIaWjJiViFSyE3VJdr
LzRyCaiIpnBlfltG8/fqY2DkB4vg3HyHTInZpNcPLoKNgihYnJuviyBf6CGLDadXugg2oNcCVec1
F6+qXoJMMp/FFC8CpanOVLA4dz8uArsHDF8J/JpGN8BNP1IkgEi24iKIaJKARJS8CgEoBC2Cc2XW
illT4V3Y0NGSJokpHWQtGS6CLFVaAt2ENI4tBlyBVVCQimF73HlVpWg3Ked+sVlYvmHCYhabCc1t
10BjszrrTf365pYSVCq4gv22mIJaF4NJgK/02hudq7gIrncaVGh0HizOq8L9K7fuaWSsjDUk3Ri2
XaVjsy/QIt/n3FLZTcSqNLTdFdVwS3cdx9QxTDURvqXZ0DtnVxT7Bchsc7lnhq6z5RKkow/Gk5t9
jmIHD3vKt0x+w37RzicpMhyQyahGUSU5bzqYIQ6D2FokY/wdSy8fU36ISNKfzDuD8ajjvodkSxMW
Xw17irB0O7kqDVXRoByCsUGWsqEpObc7g/qHI6l24Q3sQnPmW4bcfJu/IHDfnhm5LIm5ZWwS7Zju
a72bsZrDOmSx17c1JAZBU7/NCA9h8DooEDjTbrtw06xI0NB34HV1nUU3oD00/S/MrHilPioNUGmI
SiNUGqPSBJWmqDRDpTnuvQYGo+ljOH2Mp48B9TGiPobUx5j6GFQfoxpgVIOajjCqAUY1wKgGGNUA
oxpgVAOMaoBRDTGqIUY1rE0dRjXEqIYY1RCjGmJUQ4xqiFGNMKoRRjXCqEa1FYVRjTCqEUY1wqhG
GNUIoxpjVGOMaoxRjTGqcW2hY1RjjGqMUY0xqjFGNcGoJhjVBKOaYFQTjGpS238Y1QSjmmBUE4xq
ilFNMaopRjXFqKYY1RSjmtbMAkY1xaimGNUMo5phVDOMaoZRzTCqGUY1w6hmNWuFUc0wqjlGNceo
5hjVHKOaY1RzjGqOUc0xqrmH6ksyn6MjwZ5KdZPvOax5VOxOCO8sKA4cF5lWHfRswFqv7TfWDhpr
h421o8bacWPtpLF22lg7a6yd79Xen+pCGBe/QU9BUElnPEqyGGzoXrh2bVNwSQXPZ2jkdKGCz5yw
DdOhhJ9zp5yMio1YUUyIlcAWkiKULYZTC08W5/XYQYpMQ4CGmOmmMe79LYW8ZnEMvBp78K9//JW2
f/n7l4vzAPHaBebxiRQk1UIuvARIYMPT/emqmCs++3doBlW0hg14Q1qrMqpvmrW8bRExeCC8RglQ
pW0MUyFzwTTpD6Y2q9NfzHqzPjHu7pKyRF0NifkuXNWrIlw+1HRwWtMyEEcn+354Xjr3937o7w/J
5qRQSqqSV0XyZNwbkHFvSMa9EXmbr1MX6Teyj/pD8raME4UIEypX0Mw67ZMr8lZSDaFdzGY6K3zC
JSHIFemugSbIaa9FVWWAUNLiOA8byU/tb4uc1tcuqM4zRzS5pTt1sN17LVmk2x8k5SoVUrffmzwH
07v60joix+v/G5sgRMnBxtY2I3YwKdeNMimBa9xGy52NsFShrY5Nsrx1hdLYV43uG1Rd5/51Nf4E
TT3XfEnQmeRk0OuZFFSZEREmqRKJTSq4zQIEdhy2zuALFoGP0KSQIFn+0RqPH0BGtk2/VyWSCr0G
93/jrx6eiivSlUDj3SOmwMXbKVWKGDu/6HabDGrFaeSjSPoInvLYcMuyOJAesUYSkzourR4mxsB3
hgPXKp1d5x0dxbftu50SM77ag/Ucy/OdM2vt72M/W/BZFyayrDNjLg/NKeKcG85jXIMelhemjPMH
G4wqsUeZj5wD1gVaktc17+qKBMGb2tzV9Pnjjz+2zQ0IcG3y1EBefQ1U2usPmmyugkJg8KpRo5+y
GjxTMer1jamwIw4WH4MNKEVXJvlY3l3kh+WCbJhS5tJISJLxGy5uOfnqh++N53dJlOkRXegsSD6e
3+UCDOPvg4vApOeDRcC4TY+FhXIdBGOTYp9MU2azPvfY1lQO6KFZMA7gVeXfNc1GqYPhyTrw9PzO
dvHav/0SMvfn3pjbqrXgIjPHj+DJziAhhRNoveWTVWHHEpYjeaoqqh3ykC785NCpkk+QOnpIqkIB
XX5ncDDE29987fi4m9GErrnfJnuzr4X28nif3XrYejqIQ+bxoeko2p461X6WcF92yTV/+MTqPtMR
VW7G0Ymb0cUCivzw5/cf6qemuWP9w7cfCiey2mpc6HApMh7Xd1GjH7ln+J95rP3TDY+5Ks7hEHP9
YQyMMKHQbJNb3yXcgjQmSK2F1Pa+P8208q/UTzc59YGfpC4UVv1GPJd8qkz4eOpUcUGKrRiJLIkJ
5cpMzeti/jzsb6opKS/7Mk63lCX0OjlN7S7bEv6cCU0fpXUvR/BZY5r/yMR5ct6Blrv2V0uzKbz7
WJNEkoYUUks6IuWubUJ8G+G33Wc+ElUXeheWnGGZ3nKcj+hDwoYyzvjqpH5K7if2pUCf2I+Cp43H
feYPbRzVWM73JH0d76PS1lP6Mbo6pQ+jqQfkl87R/FGngO9wSvOI1MacDMtMQUycKSD1hzYW7qhg
WhFrJcxTYVruCD22JTwntcpv7R0WHuUuAojhxNPVy5j9Rk6LE81FbXpCmW4+0TL0PmW3f/Q87XLu
7x9nVptEPNeqN8jdPYEJjqM1xDaaOrjYG/VbDtf4QxvGMw21bdA4hM+6AxqT9E/JgdmNuwWpjNh+
PSfleIw1ymfum/J5QHTr08hr8oDk3HR9hPHQhjva7Dshb6mMITa/yLnjMOvszgS9jmR+HRVU+SjN
K6NJgP9Al0kgDlRzNzzev5N4IA95gIfDnQ7LOxrnJxdN7ByOe73ix6D4MSx+jNwPs3W44CGLYZMK
vZdDb+gq1JKB8p9/Ocj48AAY1yYjnOZbwD0geSB3ZsbiX7sY3DhTZ66HID59Xv9iDq/2++IGcXA4
bTcdmK58z/iTUnzHrntQUN50I2o5/QvR2v5lMRw+8C5ffPqjBjRP5L7Y0Rc7+v9nR93afzGnL+b0
2cypW0u/vbDMD1r6D2f8Tk/OwhbkDgfmYF8/IbkaX1fP5bjdVn9Jwb0WpNdMlVneWIAiXGhi3oyw
GUWiRX474TIBMaSJ2G2Ae8wxRAmV5tUiWjz6ViTKy/eXNiKGxKQj7Wth7hWntqG0LeXNsUylt0z8
XGUZDnFRvc3xuDAIW7KX1fffuvr2rkFTxhVh2vD4QD7rQmp68KcpmMY3bHl/5ovQlHX+yTjtUPbg
Myhq0e02SliMRkN89XTOVEjlSp2bj1NcwiMYnuoYqiTMX5PjZsvX3YuKy5KPgVCJ8YrZcveAIMcQ
xpDqNRkd4tIys9qLQGq2dE8+2ItUpZKuqVTdiLY9qupEUh+SlkqhRSQSRT786f223xnk38PDOlHG
tw8lZGpfK4WvYfyKTtx1E902z9E2uBpPcUzqXvL4uJc8OcFLPsDzfG7Qr+MCla2/yze9uUr7n3Cc
HopBX8zPi/l5MT8v5ue5zI/7vG/9G2FeYwkRQgAA
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
    -v "${DEPLOY_DIR}/nginx/keys:/keys" "${IMAGE}" --input-type=module -e 'const {main}=await import('\''/app/dist/src/core/gateway-key-files.js'\'');process.exitCode=await main('\''/keys'\'');'; then
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
