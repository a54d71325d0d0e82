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
H4sIAAAAAAACA+07/W/juLG/+68YKCmSFJa/4uSyTlNc7qPtAtd2u7vFHdD3nkBLY5sXiVRJyonv
sP3biyEpiXIcx7t399CP7AKxLQ6Hw/meIXUEb1FkqDCD+QawmGOWmhwWShZgsChzZlAPxZKLB/d3
kEqxuAaFsbITgQttkGUgF4AZN1wsCdOKiWzQO2owxjSNL2OezWAxvxi9GqcZu0zHvSPIuTYoZjAa
2P+zq9Fo1DsCjfkiXkltMAO9YgpnMB79ipbRZc4N3OFGw+l38XsUTJj4dXYNmGuE28qspOI/MMOl
8M9KVKDw7xVqc9Y76h3BW8yZ4WuEkpmVhjnm8h4UapmvEdiS0abArBBKhQv+AEu+RgH33KwgLvug
pR3UrEBY8BxBVUID08B6RyCkiJWUBnKZshxKJVPUGk4b5lYlxLEdPAMmMuIgz9BitCyGVArDuEA1
6PXupbpDlXgsqIFVRl73Sp454EHJs+seKiVVksslaJOhUnDPlLju9XCNwmj4sQcA4FGlUghMiTsa
pqNXl9e9D73eypjSg6U5R2GSucw2CalAQjx69PTawpZKPoRQ7W83vmDapEseQIRPHEx1rzsQ7W83
rrsIdDvbDaNao0qMvEOhQS4WblaGC1blJjGbEoGVZc5TqxHD77UUDuQOsWQ5X2NieIGyMnB5od3Q
EbxfIWRcl8ykK68fK1lqMCslq+UKzL0Ex/WSLREUZlxhajScWvXskzgFLFiez1l6dzawaBWmldK0
YjtVA9Fjh3O5TBZSFcw0dpMQuYA6ZSXe0HcLSP9OfoyI7GgWHdNnwrW8uhyNo35UaEyj2TF99COv
9gnPCDL41Y8KNCvZeeyf9E/aVaJK8RCEfvYjbZipdDQ7dl/6kd00wTWE07ZR0DpK5tgZsg/6Ucry
HFVnxD/qEFAjmkXHmlSQVDV5SHYsVJXaKGRFwrLM4u0+6G6rHqq3EkD7Ry3zHKOPw5+7kXnbSmrJ
7B7YPXeFLCNF3p4aPt89U6EupdD4eG53pDO73kyOYmlWwe7cg3403xjUCbE8mh23Pz6cOBNhKTkk
63OGGa6H2mRkQh3F9XrtrIlcB+S84AYKsirU1uWpShBxJxrkvYBTBnO+XKJy4PeyyjOQIt/AnIxs
UWnMaJrCswF8ITOO2i/BFMK8WixsLLtfyRxhjgup0DklLpbWbzN48+d37yFlwmEsc7YhlM6jC3ww
9iFPGUgFRnrsLhD1YV4ZRw5BL7jSBiYXl3c2+rF0BdqwDXABBRZSba7dDlEbWEraL61PvstGjb7H
rSVo8i9SQc7UEqEqc8kyTUQKaQAfVqzy8WjJDN6zzYn2KwxCl12wB+egNf8B4aq4fuTPHYPcONH9
GKJ2hecjHbr4cOK4nhcOaTifwOV0a0Q3w37q5KoDQRRb1078cCCjjtL4BOD2zesTDWTFPggqdCmI
jdgkbx+FBRfLmY/klIpIkSIwQ3JRxqlTzXWjKPgaxRYLnsI9uWtuNHz51Z+gkGvUfRucGXz1p3ew
4mlalYRoTpHdqSXFDx+xbb5k1+BiWft6S5uC8eWrweRiOnCf57BmOc9uzkcaeLm+vGkiVj2hEQEF
I0/sO8PmObaZz8zqESU+4NxD3yU6pCK3b14TiH/CKPmJvW0DzxxxBSvh2DpSFqZL0HriO9wktCsL
4DMD+hdF7jMIJdfNoA+6u1A7oA9bq5P0aRcJz4K17TaJgl3r7qbwKRqCBWoKAu0Kc8x5ld6hgVQW
qJ1lW3+hGNekSDbfozTUmb/VEJeDWtl7JI2/CDD3QSDpAcUpx323P2d1GqIdG4/gUSANeEF5MC3g
8Ldb/zWET5qdfruSwMmb5Lm1jq4fcXsg8ylYqSH6AplCBb+5w81vI+exKF7DqaOXvJQsUTEjlc9q
juCv4k6Q93bhW8MSDUxH40N1zeL/8ZEEo6jdGhdpXmVoqR164mP64eqRncr11HKOyj0LNpy7Fc1e
oWAbKLkgdnhjMhKkQLDJ++l38dd1qfNWVgbPaHjJKFQBrnmG5IisqnDjsd+vmLGaYXWLRH8NC6mA
iQ3hbQzaWTiJ0AfAWqM0z1GYfAN8KaTCwLa3kq3Z8XbSpIjGqCODyuwSwqN/C6nmPMtQtMKJ/vF/
f2PxD//769lx1IF1m2rhambOAvOIbA7/WJlb4BbO/tuh41bmOl1hgcGWVropffZK+Q3TlJMTn3Oz
smWcd5ouD0i5SituYK6Q3aGawTksGM8xA2YoeFHSb/P5PnjXXUf2i4cHspfp5NWZLR65gAtNKkWh
pg9CNuGH5H6hfdVA0qe6pNY0j01hXCo5Rw3cDHzgyeVSQ5MJ+mLIphhSMcXzDRUxFDuyqA5xdn2q
U2yWCwop1eDGG3OAqpZJwMMcmTY2mW0F5dccTz6zBfx4djW6GgNFduKSvnHcqqPaTV1iPTV1ctjU
pniD80n79AheZzm2mwhr3TSXmry349yJdobrc8RuJkrIY4e9I9EmXyMnQDkaWHMFTos6/M4yFUsp
S2lchRTWkWppY0ywmHXMudRN2rC7MG2ysQ9h0RsKxjZROj2UkCtfk3pqrzMFu7M6RBKGUy/jSihK
YG2awRYGFbCmeu2DZhvqVeh72/ChDQTI/1yiuH3tqmGKkSVCHdtYTuq1gZIpjaTwhtj1h/d//Aao
9m23HJTSF6MJXIzO4WI0hc+9q3f18vUu8On4HD5vKjMpE5tD+8zJVdWu8ocbGHoTb/m2Vck0yVgz
lmW+AIPAw3/hQ7LjJ8vv2UY/Oe+dUTw18XvFhC6lMvE76gJws9l2VbvwKDSVEjAZjajgb2pVeUf1
syxKKWx9FllK7DNqs0WzKGyyUcGO+eIPVtJvUKV2znj04X/ESbvch14gU8qOrILPWc5EiupE1/4x
XWF6B6elkmuuia9xXHAxjOOCPZzNLKku6250fI4rTqn2iutgCS9aF9dYtmnaarfffOGSLI2CqiCv
S0baXiNRQ5UjM7aIs5ZA04rBTok7/Ttc4K4uKZnWQDFzNhzuCk4tJOHvZOw72BnS04Rg1071vYaP
0cicasXGZXYHMxQbgug+1aaa+4WepW89HloKMy6Wj8j66cbwXfzWmWr8OgtriF/UiDre4gpu4POn
ZNqBfEWQz0FNRl18ScmF2Dth2qJ9FvgJ3xaCH8GXZJBUwbhQxsSGMo0lGRbpKMdsRl636iTpdaAi
p4+6rl9Omci2sDu4JRrXrvGAVJxx8T2mBrOzQWcKX8DpVm5/A1F0tqVMWwL+9ttvY2rdozDUqUU4
8YWIQpYXN1GNMDrZKeKfop6Bn52OxuRnrQii2Y9RgVqzJfXUmu69d1szKLi2laFUDWt96X1tPVf3
JGIGdWFV+z1bYPUjalBHs4gL2xdIamk7EsihZ+EwK7mtDz90fXdb/jwlBcrub9rkfZc0Gh6cH8yD
7aoHTsOSWiqvLmekiyspZEXNOevbF0Edaau6g1lh95I0O/lUVrQmu48Xk9HHYz4A6/RwrHX5fyjF
46t9uBuoV/sjwfBncv2NTk0P1CkX0LXr0m5FI+rH/f7r93Ua12qMkCZZyEpk28qwa2uPHerPvNfx
4fbj2sOuRrANb65Bkr+9KrwTWSDl3DaxlsrY9LusjA6PNA+3nO2NH8SuTgr+H5IReFFRqXGoqISE
2hRT2/715dBpLb+A9rNWJM1RTCXYmvGcCqw9bD+C2yZtDo476qBNXpOa1H+vpGHkbDHk+1/oafzO
JnpnMwvomBWm3Ta1pZNxU5/JcO1LuBMNihmM3SGN5cqOpPpzR0viaPgYfQhaCs8qRTP5S1vRdC4N
/EuqVIDnLRq1iW9tFR2c41ELTtFQ4gvs/VgeYhKGlYWTSN3F19tIH5IGMnF/G8iPWENhwTidnxy0
TgP9iWtpNAeuo/HT9uP++nsBz3LMw30Sv55fo+XWp6xDvDpkDeLUHvxN9vHqo+JTmNFtuybvlrZ7
6zMXxBpPRfeFjNr4xtIekwiyQNqYl812GAtGHlLEDA+L+zs7mp9S81uy16hs92O8XYM7GJKFF+aX
TROyc6SxE5Z6NHBMSz8D+JSPe3ba76S6ZyrDjL7BsYMg1XugnNoN0bdnEbUeercS7EIQXoOghslE
715GZI9bn3v6Lo9gjlz+yLVtOfKM+uGGTq+MdFnJNYR5pUJ3N0BsmsN/ajxXCulCwgV1tBSwrRXI
joyUZ66BZRS3pc2jawTuGDmVle2HNlfLWANwouuThcGOfRKqpOlnuxys3rbVQ6LOf5nUX87rL1P3
hUgVUiQtI66fWyqhDWmYHAC4X1BcGOo4lt6M3XWnJ/odtJew/Ut0d7sr7uBlW9i33hH5SyQuM6l9
1HzTabifkldqDj1nUF8ca9Jpm1tvLVBwYc/03Okw5YFQ2duP1NME11qb+YyQshvq/U8nr/pNl6VR
DyYknQlu4Q+unEgB3XNjqzqENLiW2KqOK4UGBxtrmCPC9LPJ072nzybE+zDZ+0l9Ku86eYZPZ4jX
L8nks7HL9wxfQthLCHsJYf+OIczZ70ske4lk/0WR7Ai+XqPq+ibar8jqEyXv6BhdubKBhi75winp
SIZlLjcFOb+MrtESXIZpzuzFDWZqFL513LyaUcgMc2rQWQV3b2/ENBLbkbMzukaZ5siUU4HwkofT
2DWmhgzeXtzyCu8fgi5ZioP9sdpv8z+jafpEh2u8v8N6eDMcrYZ02g1dbTltLyc5q9++su/ep7Ge
rO7KNgpDl1mcvzPSK4zrb/xS2vVcZzhQk7A33LQ5hEzqCzh7G8afaFiPju5KLuhWELEnkMEvbyOd
ePhiKv+qpnKgvvyyWr9Dk3Z29DSaUExuPfoAVvLB91ywAeN7L/7o2XC4E8NsOj3vnksec50wtdTH
9OeQ4ugZGj61RNJ54l+GE+SftpPUFsoOP0eEzqk+5IvNHkQOIMmwNCuYPgVlVGW5l6IyfOFudwzR
pEOt8yE91MOUxcGoHqTKPIWtVNLIVOYa3n/zbj0eTPzn+dM80VTlJgor/ZgrR91rGvaEzXRePBnY
y3D2wov2Ls9egeRN3r3C5n4614+KLC14WaJ/bai+e1owbdzllkzDqX0ZlBzt6HI0cpfxZWWat0KV
f0V3C7F749C+ZtS8MTprgP07vCsEFGuupLARrn4VZvvOjiefrg8OsqHbfEwX6IP79fvr4Ivn6+DL
A+rgJ2B+vmz7/yfTbmb/zjszOj/+t+g07esyvbjVF7f64lZf3OqLW93vVt3fD71/AgzYSuheQwAA
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
