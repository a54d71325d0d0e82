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
mTujO3GRjdF2eXTpY1FUnFo0XZdWuMHD1V/X2M832JmKM9s1XPJzWGsalw1tvfrW/4jWvnPxP8Ln
vu7otbx9dDrszC6pKTvTMOtMcIEZDF69jnOcxzarWqKND5Ikga0tqDSTdgrb70ZjiOvN4f14fB6n
UfJZf5butw2vtwbOuESaQyhTeLU1gL+h0FhB+BW2oZ8ksP0/9Wh/78UDPVppJdCWOFulRyeOO7p5
P9p7HtW3V6WVq1J3XwVCSWaVbjnlkQ0dhq5SWRG5lQ599bS7df5GN4I3FGuVpgVG1uSXkUaL0iU9
ckgcpnt5bXSNlxFnxqIMaZ5rNOawvQtfJi+Th5t+Q8utHoU8fNJlsXdfNorN2P8D8aDaBmoPAAA=
EMBEDCTL_COMPOSE_EOF
base64 -d <<'EMBEDCTL_NGINX_EOF' | gunzip > "${DEPLOY_DIR}/nginx/nginx.conf"
H4sIAAAAAAACA+1ca3Mjt5X9rl9xq6WUpBRJ8S2SWqU8dpxkqrzO7MxsOVX7YMDuSxJWE+gAaEm0
a/a3b10A3Ww0mxQ9sbObRDNVIhvPA+DiPg7QPIf3KBJUmMBiC7hZYBKbFJZKbsDgJkuZQX0jVlw8
u7+dWIrlHShsK1sRuNAGWQJyCZhww8WKWlozkXTOzssW21SNr9o8mcGyPxz32KC3xN7k7BxSrg2K
GXQ79v9s0u12z85BY7psr6U2mIBeM4Uz6HV/Rd3oLOUGHnCr4epP7Y8omDDtt8kdYKoR3uRmLRX/
gRkuhU/LUIHCv+SozTXkwvAUmG+Ga3hS3BgUVbQ2r51wNYMbNLGfgDD77PzsHN5jygx/RMiYWWtY
YCqfQKGW6SMCWzGaHTBrhEzhkj/Dij+igCdu1tDOWqClzdRsg7DkKYLKhQamgZ2dg5CiraQ0kMqY
pZApGaPWcFWuUp5Bu20zr4GJhJaCJ2hbtIAhlsIwLlB1zs6epHpANfetoAaWG3l3lvHEFe5kPLk7
Q6WkmqdyBdokqBQ8MSXuzs7wEYXR8OMZAIBvKpZCYEzTrGHYnY7vzj6dna2NyXyxOOUozHwhk+2c
ZGlOc7SXemfLZko+V0vtnl3+kmkTr3ilRDXFlcmfdFBi9+zyddiA3tV22ageUc2NfEChQS6XrlaC
S5anZm62GQLLspTHVrRuvtdSuCIPiBlL+SPODd+gzA2MR9plncPHNULCdcZMvPbysZaZBrNWMl+t
wTxJcLOesRWCwoQrjI2GKytlLVpOAUuWpgsWP1x3bLMK41xp6nFXVQPhsdmpXM2XUm2YKUV6TnAB
dcwyvKfvtiD9u/wxItjRLLqgzznXcjLu9qJWtNEYR7ML+mhFfv/MeUIlK0+taINmLYNkn9K63PUS
5YpXi9BjK9KGmVxHswv3pRXZQVO5EjgNGwX1o2SKQZZNaEUxS1NUQY5PCgAUDc2iC00iSKI6f543
dJRn2ihkmzlLEttumBAOq8gqhlIp7ZN2k+cm+qL62NyY31vzYmWaM5rrrpElJMj1qtX05poKdSaF
xv26YU5QuxhMimJl1pXRuYRWtNga1HOa8mh2sXv4dOm2CItJIVmdc5Pg4402CW2hQHC9XLvdRKoD
Ur7hBja0q1BbladIsW/wUoN8EnDFYMFXK1Su+JPM0wSkSLewoE22zDUmVE3hdQe+lAlH7btgCmGR
L5fWKD6tZYqwwKVU6JQSFyurtxm8++OHjxAz4VrMUralJp1GF/hsbCKPGUgFRvrWnUVrwSI3Dg6V
XnKlDfRH4wdrRlm8Bm3YFriADW6k2t65EaI2sJI0XuqfdJe1Gi3ftpagSb9IBSlTK4Q8SyVLNIEU
0gA+r1nu7dGKGXxi20vte+hUVfaGPTsFrfkPCJPN3Z4+dxPk8gn3folCFQ66uqriqxV7Rb1qloZB
H8bDWo4us33V/iQoQYitaqf5cEW6gdB4T+LNu7eXGmgXeyOo0Pky1mLTensrLLhYzbwlJ59GihiB
GVoXZZw4FbNuFBlfo9hyyWN4InXNjYavfvstbOQj6pY1zgx+++0HWPM4zjNqaEGW3Ykl2Q9vsa3j
ZfvgYlXoeotNQW887fRHw477HMAjS3lyP+hq4Nnj+L60WEWFcgnIGHmwHwxbpLhzoWZWjsiDAqce
Ws5jIhF58+4tFfEpjLyott/bwBMHbsMyuLCKlFX9Lthp4gfczmlUtoD3DOhfFLnPiim5KzO90W1q
2hX6VOudVp9GMedJpW87TELQ1G8zwkMYKh0UCPyUfitBIe0zt9rOobPze8WKnDiVJG08SdGudtu6
C1DxoK5pJR6QNuQijx+QPNNCwCqesJNP5pxFubSCJsh75Jq0xa7vhKtLDX+Oc6VQmD/DlX5iWebc
fCXTVObG+xLn8I18ojV1/WqnjWagGNck+bZNcsCdvnKDtN63kVVsrjU35U4RaIga1iKqTL0f6m51
er+ifVt56gVP/eBpEDwNg6dR8DQOnm6Dp0nwNA17r4EJ0fRCOL0QTy8E1AsR9UJIvRBTLwTVC1H1
Q1T92hyFqPohqn6Iqh+i6oeo+iGqfoiqH6IahKgGIapBbelCVIMQ1SBENQhRDUJUgxDVIEQ1DFEN
Q1TDENWwJlEhqmGIahiiGoaohiGqYYhqFKIahahGIapRiGpUE/QQ1ShENQpRjUJUoxDVOEQ1DlGN
Q1TjENU4RDWu7b8Q1ThENQ5RjUNUtyGq2xDVbYjqNkR1G6K6DVHd1tRCiOo2RHUbopqEqCYhqkmI
ahKimoSoJiGqSYhqUtNWIapJiGoaopqGqKYhqmmIahqimoaopiGqaYhqWkH1a5hOAxNprXRd5VeC
OE9AOQtRsQWFAXbmZddB11qdemqvMbXfmDpoTB02po4aU8eNqbeNqZPG1OleaulRfLeWZM8phrVe
aOivW9Nr7f+GZRqiL5EpVPAvD7j9TeQiA4qL4coZYYoGZIaKGalKi//v4kFQlOTCZA0rNDDs9k71
6Wz7+wsVRbvhcRGneYIW7Y0H36YHRyA2OnGHunMoj3RYztwbUY4VNmwLGRc0Hd5pNRKkQLAk2dWf
2l8XdN57mRu8puwVo5AQ8JEnSA6/dce58a0/rZlB8sRLN+sOllIBE1tqt3ScnSdNS+gDzRYIW0/z
FIVJt8BXQiqs+NA1UmN2UScnFGGMgjXITdMi7P1bSrXgSYJitzjR//z3f7D2D//169lFFJR1g9qV
KyZzVvHzIsuV7Qv0rvCunP3XION2zXW8xg1WhrTWJcV4dJXfMU3cF81zataWLvXBiYu3Y67inBtY
KGQPqGYwgCXjKSbADAWJRK5Z3qwFPkQqIujR8zPtl2F/em1JWi5gpEmkKKRrgZBlmEfrPtKenaPV
tw69lzTfmsJ2puSCHH/T8QFeKlcaSsbFk442lJeKKZ5uiSykGC2JilDS9k98oGWTQCGF9Lxw3ytN
FWtSmcMUmTaWNNotlO+z17+1jHtvNulOekARNM2SvnezVUSP9wWVeahq/7SqJUkauILn8JZionIQ
VU7ZBk0ghZu5S+02rudiQsanElMFK1ryImUkZrerC8Rc+25nKhYTG1CqCimsItXSGqtKZ1Yxp1KX
4XkzAVyyHp+q5HJ1YeypR3DoUZ2Vr0k8tZeZDXuwMkQrDFd+jXOhiCiy4TxbGlQUFXqWuAWabelM
QD/ZExoaQKXxP2Yo3rx1rDOFdhlCEbCxlMRrCxlTGkngDU3XHz7+6zdAHPNuyBXKetTtw6g7gFF3
CF94Ve946bum4sPeAL4oGVAp55ar8gyFY68dww73cOO3+G7eaoxhSXqUeUniiU6oaPgvHbXr55Ol
T2yrD9b7YBSPTfujYkJnUpn2B2LbudnWVdUL7VT6/8qefgUnX4217XHPwROnGx/Nh3WM2lrWSxez
1bFU/xfuoXSvdpU+NUx1vfTfdsY/Y6Z+rvVSaHIloN/t0kFIyeHLBzpXkJtMCstbR3YcNo3wRbOo
ipAOMjBd/sHuzHeoYlun190dZxTzGn36T3HZuBSOprQ6asFSJmIkAsfLf7zG+AGuMiUfuab1arc3
XNy02xv2fD2z6B1BWaqpBa45sZJrTyO5LvzudK4JS7blCeSbb7509I5GQYSxVwdG2vNdQkPEFjOW
77bKjKptOo2b1qmQ0yXIUbgZ0xrI7Znd3DT5F7uS1H5Abh6T7Hu4Kb0ot6v8scxPEfGUaPXS6oWZ
CYotlQhTtckXvqMX8T323EZPuFjtwfo5dtd7p23bb5Mq3fqL7qtA4U/gHr44tKZBySmVfKlUvxu2
N8+4EEcrDHfNvlj4gHmqFj+Hr2hDEpvqvBEmtuQsrmhjkYxyTGZkOPMgzip8DbLbqIsjiSsmklrr
rtyKyFizO7sgHpuL7zE2mFx3gip8CVe18Oweoui6Jky1Bf7uu+/adF0ChaFDbYRLH0sqZOnmPioa
jC4bl/ivEc+K6h12e6R67RJEsx+jDWrNVnT8WF508GprBhuuLSctVTm1/pTizmqu8PbHDIrYuNB7
NkZuRXSWH80iLuwRyrxYbQeBdHxSzWYZt7z1p1B37yLYQ6tAAdr9Lv5qWo1yDgYnz0E9cIWr6gGB
VF5crkkW11LInMy51e3LChVgA/OTp8KOZV6O5HOnYrdlj81Fld4+teUTWh0ea/Uc3tCxm6leFYIr
IW3s5Q4VY9q11zOgvbn1d2BAow0b6HCFDvXICIc7Uwdcl79icJD9utsbajt52R9sGnZzv02adX96
28uX+7ypM3qngzhkCI6tc1H3VBmqHqDst12Wmh63zTc/kzEud/nwxF3uXCztrhjU/AM6TP791x8L
b3+3h4U086XMRVLfno0O/56J+5nH2jtdo7m7DW7P2dsaXIMkCzjZeLW+RApkbbQqlbExbZYbXd2t
p+uy+sBPmq4grv0H8dH8UlH8fupSCQnFVozt3QXPMVwV61fBfr1bkvIeUS7YI+MpsRZHpp20cRHI
VO7qFG4U2TE6+P5LLg0j84fVef83Sm1/sK739cwWdJNVDYRssEH3Q01xoYhrz4tcalDMYNvdMLKz
0hDmfOGwzB2GnyIPFZ7uFw2L/09EqtLOezRq235jqanKJTTitRVlzT1rdbyV5zYthl0LtyLFFRRd
b/R5Xpacu79lyZ/Qh8IN43T556R+ytKf2ZdGc2I/Gj9vPO6vv9T64oz5cp81Xy/3sZutz+mH5uqU
PmimjrRf+oPTn2Sfqj52XTV5tVQ/sJo5I1ZqKro1b9TWs7VHtkTFL6eB+bWpm7FKznOMmOBpdr/x
mOBzWBgL+xGV5aN6dVbElaG18Iv5VcnsB+eEjWWJSIML6vqFgod03IvVfifVE1MJJvQNLlwJEr1n
inJcFn17saGdhm4WgqYGqnd4icLq6+ZuRLJ/nnCECdsrc+78R64tj88TOmQydCRspPNK7qDqVyp0
F1vFtry5Sqc5uUK6yTYijlEBq/VA+8hIee0oRaO4DTb37sC6O5CxzO0hQ/leBCsL0L03d1zXaRgn
NTUvD4mcD1YM28ohofNf+sWXQfFl6L4QVCHFfDcRdy91NacB6eq1s4MFjy8UF4Zo4cxvY3dX/wAD
RWOpnqkQ7pDvcqeZd3sRrBM5fwPaeSaFjlpsg1OsK9JK5U2CGRRvPZTutPWtax1suLAH5bHcoLZ+
IOT2HSBimcGRnTPvEZJ3Q5HxsD9tlbxXKR5MSDpor7VfuS8tRXlT2lW2okONVt6p2YmOP/g4ebNW
fUQY3vYPs4G3fZr7qrP3VzGHXnXyBA97iHevzuSLtsuzuK8m7NWEvZqwv0cT5vbvqyV7tWT/RJbs
HL62hwdV3UTjLZn5QtExusdoDQ29oQZXJCMJZqncbkj5JfQOGJVLME6ZvQ3FinuyBXVcvle8kQmm
RNBZAXevHrcpp21zru2bJ3GKTDkRqN6cchL7iLGhDW9vQ3qB94mgM1Y98mi01X6Y/xik6QGGq3ec
YT2dDHfHSwHdEErL1e7Gn9v19fdN3cvgVpMVrGwpMHRDzOk7I73AOH7jl5Kul5jhiphUueGS5hBy
XtxqO0oYf+bG2jtMzbigq3a1d5t++T0S2MPXrfL/daucKC+/rNQ3Xd9rYvTC41ffH30Ay3jney5Y
h/GjV7H07OamsYXZcDgIzyUvuJ4ztdIX9OeU4OgFDJ8bIul07n/Jwb4XWXdSd6Vs9ksgdErxIV9u
jzTkCswTzMwahodKGZXb2YtRGb50923sKbvW6Q0l6puYtSu5uhMrc6i1TEkjY5lq+PjNh8dep+8/
B4fnRFOUO1eY6/1ZOQ8vztgTNhO8Nd2x1xPtFSTtVZ69V8xLv3uN5UsfXO8FWVrwLEP/zntxoXvD
tHHXjRINV/aXTEjRdsfdrn/DNTflT5oUNyVqDbufy7DvyJc/dzIrC/tfslkjoHjkSgpr4Yr3uOu3
qDx8uuPZSW7c4Nv0VkrlpZXjcfDo5Th4fEIcfKDMz+dt/2087bL277wyo/Pjvwum6RjL9KpWX9Xq
q1p9VauvavW4WnV/P539LzAacXtkTgAA
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
