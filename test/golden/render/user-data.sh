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
H4sIAAAAAAACA+1bfW/juNH/359ioKSIU1h+y8tlnaa43EvbBa7tdneLO6DP8wi0NLZ5kUiVpJz4
DtvPXgxJSZTjON69uwd9yS4Q2+JwSM4MZ34zpI7gLYoMFWYw3wAWc8xSk8NCyQIMFmXODOqRWHLx
4P4OUykW16AwVrYjcKENsgzkAjDjhoslcVoxkQ17Rw3HmLrxZcyzGUwmZ5iezafpq8/OekeQc21Q
zGA8tP9nV+PxuHcEGvNFvJLaYAZ6xRTOYDL+FQ2jy5wbuMONhv538XsUTJj4dXYNmGuE28qspOI/
MMOl8M9KVKDw7xVqc9o76h3BW8yZ4WuEkpmVhjnm8h4UapmvEdiS0aLArBBKhQv+AEu+RgH33Kwg
LgegpW3UrEBY8BxBVUID08B6RyCkiJWUBnKZshxKJVPUGvqNcKsS4tg2ngITGUmQZ2g5WhFDKoVh
XKAa9nr3Ut2hSjwX1MAqI697Jc8c8bDk2XUPlZIqyeUStMlQKbhnSlz3erhGYTT82AMA8KxSKQSm
JB0N5+NXl9e9D73eypjSk6U5R2GSucw2CZlAQjJ69PTa0pZKPoRU7W/XvmDapEseUIRPHE11rzsU
7W/XrrsMdNvbNaNao0qMvEOhQS4WrleGC1blJjGbEoGVZc5TaxGj77UUjuQOsWQ5X2NieIGyMnB5
oV3TEbxfIWRcl8ykK28fK1lqMCslq+UKzL0EJ/WSLREUZlxhajT0rXkOSJ0CFizP5yy9Ox1atgrT
Smkase2qgeZjm3O5TBZSFcw0+yah6QLqlJV4Q98tIf07+TGiaUez6Jg+E67l1eV4Eg2iQmMazY7p
YxB5s094RpTBr0FUoFnJzmP/ZHDSjhJViock9HMQacNMpaPZsfsyiOyiia6ZOC0bBY2jZI6dJvtg
EKUsz1F1WvyjzgRqRrPoWJMJkqkmD8mOgWppP0naEAyiqtRGISsSlmV2Dt0HXRHUTfWyA2r/qBW0
U8px+HM3M78Pk1qLuxt2910hy8jot7uGz3f3VKhLKTQ+7ttt6fSuF5OjWJpVsDr3YBDNNwZ1QjKP
Zsftjw8nbjuxlJyX9U+jDNcjbTLabh0jDzeedaw5F6iBC2DOx0ph/SzNDhYyz+W9hn4cL5nBe7aJ
c7k8BSMBH0qpnPN2gYKJzLOu1Q+prIRBpYn+jZJk9ljpme3k+QE3FIFgxTQICaMCjeKpHj5az5qp
US6Xo3oxI89g6IiGRLS10GCl5E8h5wU3UJCrQW0n4dd5okHeC+gzmPPlEpUjv5dVnoEU+Qbm5HkW
lcaMuik8HcIXMuOo/RBMIcyrxcIG+PuVzBHmuJAKnafmYmmDGYM3f373HlImHMcyZxti6cKcwAdj
H/KUgVRgpOfuovMA5pVx0yHqBVfawPTi8s5CApauQBuSp4ACC6k2126FqA0sJVodMIs1rJoHnreW
oMnpSgU5U0uEqswlyzRNUkgD+LBilQ/SXuIn2o8wDONYwR5c1NL8B4Sr4vpRkHMCcu0078cUdXw4
G+sw7oUdJ3W/sEnD2RQuz7dadNPsu06vOhQ0YxvvSB6OZNwxGo+Kbt+8PtFA7sojA4UOl1kYQ/r2
0ERwsZx5eEP4TIoUgRnSizLOnGqpG0WIxCi2WPAU7imGcaPhy6/+BIVcox5YxMLgqz+9gxVP06ok
RnOCO84sKah6GGNBpB2Di2UdAO3cFEwuXw2nF+dD93kGa5bz7OZsrIGX68ubJozXHRoVUIT2k31n
2DzHFg7OrB0RGgTnBwcO/ZGJ3L55TST+CSNEGHsnBjxzkytYCcc2ZLAQQ0Ibnu5wk9CqLIGHS/Qv
itxnEF+vm0aPRHaxdkQftkYn7dMqEp4FY9tl0gx2jbt7hk/NIRignkHofAPgPa/SOzSQygK129nW
XyjGNRmSdbKEzd32txbigLnVvWfS+IuA8wAEkh2QO3bSd+tzu05DtGPhETxCF4EsKDmgARz/dum/
hvBJs9JvVxI4eZM8t7uj60fcGmj7FKzUEH2BTKGC39zh5reR81gEYqDv5kteSpaomJHKQ70j+Ku4
E+S9HabRsEQD5+PJobZm+f/4SINR1C6NizSvMrSzrcNOTD9ckrbTuJ4azs1yz4CN5G5Fs1Yo2AZK
G6LrzWSkDdQ2o+l/F39d539vZWXQBuglo1AFuOYZkiOypsKN536/YsZaRhPAr2EhFTCxIb7NhnY7
nFToA2BtUZrnKEy+Ab4UUmGwt7cQ6Ox4Gx4qmmPU0UFldinh0b+FVHOeZSha5UT/+L+/sfiH//31
7Djq0LpFtXS1MGfB9ohsYvPYmFvils7+22HjVuc6XWGBwZJWuskH92r5DdOUqJCcc7Oyua13mg4H
pFylFTcwV8juUM3gDBaM55gBMxS8KBOySc4AvOuuI/vFwwPtl/Ppq1ObUXMBF5pMikLNgMBWHX5I
7xfap1KkfUrWakvz3BTGpZJzQopm6ANPLpcaGsjrM0QLMaRiiucbyuwodmRRHeLs+JS8WTgPCglq
cOM3c8Cq1kkgwxyZNha1t4ryY06mn9mqxmR2Nb6aAEV2kpK+cdKqo9pNnXc+1XV6WNcmo4Wzafv0
CF5nObaLCAsAaS41eW8nuRPtNq7HiF0kSsxjx72j0QavkRMgjAZ2uwKnQR1/tzMVSwmlNK5CCutI
tbQxJhjMOuZc6gY27M7WGzT2IawEhIqxlaVOYSmUytdkntrbTMHurA1Z0N/3Oq6EIgBrYQZbGFSU
i/gkYgCabaiAo+9tFYwWEDD/c4ni9rUrEVCMLBHq2MZyMq8NlExpJIOnHAX+8P6P3wAVBNolB/WF
i/EULsZncDE+h8+9q3dFhOtd5OeTM/i8SUGlTCyG9sjJlRpcOQRuYOS3eCu3rRSnAWNNW5b5TBMC
D/+FD8lOniy/Zxv9ZL93lE2Z+L1iQlO+Fr+j0gg3m21XtYuPQlMpAdPxmKogTVIuKa9PZVFKYRPR
yM7EPqPaYzSLwsojVTEwX/zBavoNqtT2mYw//I84aYf70At0SujIGvic5UykqE507R/TFaZ30C+V
XHNNco3jgotRHBfs4XRmp+pQd2Pjc1xxgtorroMhmuzT+aBNU2u8/eYLB7I0CsqCvC0ZaQuwNBvK
HJmxSZzdCdStGO7UuLO/wxXu8pKSaQ0UM2ej0a7g1FIS/w5i3yHOcD5NCHY1Zl9U+RiLpHJA6zK7
jRmKDVF0n2pTzf1Az85vPXHpfcbF8tG0fvpm+C5+67Zq/DoLc4hfdBN1vMUV3MDnT+m0Q/mKKJ+j
mo67/JKSC7G3w3nL9lniJ3xbSH4EX9KGpAzGhTImNoQ0lrSxyEY5ZjPyulUHpNeBipw+6jp/6dcV
pJa7o1uiceUaT0jJGRffY2owOx12uvAF9Lew/Q1E0emWMW0p+Ntvv43pPAOFofI1wolPRBSyvLiJ
aobRyU4V/xTzDPzs+XhCftaqIJr9GBWoNVtS8bA50vBuawYF1zYzlKoRrU+9r63n6h7PzKBOrGq/
ZxOsQURV+2gWcWHrAkmtbTcFcuhZ2MxKbvPDD13f3aY/T2mB0P1NC953aaORwdnBMtjOeqAfptRS
eXM5JVtcSSErKs5Z374I8kib1R0sCruWpFnJp4qi3bL7ZDEdfzznA7ieH861Tv8PnfHkah/vhurV
/kgw+plcf2NT5wfalAvo2lVpt6IR1eN+//X7Gsa1FiOkSRayEtm2Mexa2mOH+jOvdXL4/nHlYZcj
2II31yDJ314V3okskDC3BdZSGQu/y8ro8Jz38J2zvfCDxNWB4P8hiMCrilKNQ1UlJNRbMbXlX58O
9Wv9BXM/bVXSnDlVgq0ZzynB2iP2I7htYHNw3FEHbfKaVKT+eyUNI2eLodz/Qk/jdxbonc4soRNW
CLsttKXrAqY+k+Hap3AnGhQzGLtDGiuVHaD6czeXxM3hY+whKCk8axRN5y9tRtO5SfEvaVIBn7do
1Ca+tVl0cGBJJThFTYlPsPdzeYhJGVYXTiN1FV9vM31IGsrE/W0oP2IMhQXjdH5y0DgN9SeOpdEc
OI7GT1uP++svSzwrMU/3SfJ6foxWWp8yDsnqkDFIUnv4N+jj1UfFpxDRbbsm75a2a+szF8QaT0WX
qIza+MLSni0RoEBamNfNdhgLWh5SxAwPi/s7K5qfkvPbaa9R2erHZDsHdzSkC6/ML5siZOdIYyct
1WjgmIZ+hvApH/dst99Jdc9Uhhl9g2NHQab3QJjaNdG3Zxm1Hnq3EexiEN73oILJVO8eRmSPS597
6i6PaI4cfuTalhx5RvVwQ6dXRjpUcg0hrlTo7gaITXP4T4XnSiFdSLigipYCtjUC7SMj5akrYBnF
bWrz6BqBO0a21zB0cN+ONQQnuj5ZGO5YJ7FKmnq2w2D1sq0d0uz8l2n95az+cu6+0FSFFEkriOvn
hkpoQRqmBxDuVxSn6ycpln4buztgT9Q7aC1h+Zfm3a2uuIOXbWXfekfkL5E4ZFL7qPmmU3Dvk1dq
Dj1nUN+ma+C0xdZbAxRc2DM9dzpsL9ZU9koo1TTBldZmHhESuqHa//n01aCpsjTmwYSkM8Et/sGV
Eymge27sbvBknbuarem4VGh48GYNMSKcfzZ9uvb02ZRkH4K9n1Sn8q6TZ/g0Qrx+AZPPxi5fM3wJ
YS8h7CWE/TuGMLd/XyLZSyT7L4pkR/D1GlXXN9F6RVafKHlHx+jKlQ00dMkX+mQjGZa53BTk/DK6
Rkt0GaY5sxc3mKlZ+NJx875KITPMqUBnDdy90hJTS2xbTk/pGmWaI1POBMJLHs5i15ga2vD24pY3
eP8QdMlSHO6P1X6Z/xlF0ycqXJP9FdbDi+FoLaRTbuhaS7+9nOR2/fa7Ce4lI+vJ6qpsYzB0mcX5
OyO9wbj6xi9lXc9VhgMzCWvDTZlDyPYljn0F40/cWI+O7kou6FYQiSfQwS+/Rzrx8GWr/KtulQPt
5Ze1+h2WtLOip9GEanLj0Qewkg+/54INGd978UfPRqOdHGbn52fdc8ljrhOmlvqY/hySHD0zh09N
kXSe+DcEBfmnbZDaUtnm5yahc8oP+WKzh5EjSDIszQrOn6IyqrLSS1EZvnC3O0Zo0pHW+Yge6lHK
4qBVD1NlnuJWKmlkKnMN7795t54Mp/7z7GmZaMpyE4WVfiyVo+41DXvCZjovngztZTh74UV7l2ev
QPIGd6+wuZ/O9aMkSwteluhfG6rvnhZMG3e5JdPQt2/IkqMdX47H/hWwyjSvyir/3vIWY/capn3N
qHmNdtYQ+xebVwgo1lxJYSNc/SrM9p0dP326PjjMRm7xMV2gD+7X78+DL57Pgy8PyIOfoPn50Pb/
D9Juev+ufhFPyH+PStO+KtOLW31xqy9u9cWtvrjV/W7V/f3Q+ydhLkT6c0QAAA==
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
