# ds01 image recipe for project 'thesis': the Dockerfile is the source of truth of your environment.
# Rebuild after editing:  image-update thesis --rebuild
# Add packages:           image-update thesis --add "pkg1 pkg2"   (apt: --add-system)
# Put your own steps between the two 'your additions' markers: ds01 keeps them when it regenerates.

FROM nvcr.io/nvidia/jax:24.04-py3

LABEL ds01.managed="true" \
      ds01.project="thesis" \
      ds01.framework="jax-24.04" \
      ds01.type="ml" \
      ds01.base_image="nvcr.io/nvidia/jax:24.04-py3"

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    CUDA_DEVICE_ORDER=PCI_BUS_ID \
    HF_HOME=/workspace/.cache/huggingface \
    TORCH_HOME=/workspace/.cache/torch \
    MPLCONFIGDIR=/workspace/.cache/matplotlib

USER root

# A lab CA for an intercepting proxy: ds01 passes an admin's CA bundle at build time (empty = nothing).
ARG DS01_CA_PEM=""
RUN if [ -n "$DS01_CA_PEM" ]; then \
      mkdir -p /usr/local/share/ca-certificates /etc/ssl/certs /etc/xdg/pip \
      && printf '%s\n' "$DS01_CA_PEM" > /usr/local/share/ca-certificates/ds01-lab-ca.crt \
      && { update-ca-certificates >/dev/null 2>&1 \
           || cat /usr/local/share/ca-certificates/ds01-lab-ca.crt \
              >> /etc/ssl/certs/ca-certificates.crt; } \
      && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/xdg/pip/pip.conf; \
    fi

# System packages (Debian/Ubuntu apt)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        git \
        curl \
        wget \
        vim \
        htop \
        openssh-server \
        tmux \
 && rm -rf /var/lib/apt/lists/*

# Python packages of the "ml" project type
RUN python3 -m pip install --no-cache-dir \
        jupyterlab \
        ipykernel \
        ipywidgets \
        numpy \
        pandas \
        scipy \
        scikit-learn \
        matplotlib \
        seaborn \
        xgboost \
        lightgbm \
        catboost \
        optuna \
        shap

# >>> your additions (kept when ds01 regenerates this file) >>>
# <<< your additions <<<

# You, baked in: ds01 passes your uid, gid and name, so files you make in /workspace stay yours.
ARG DS01_UID=1000
ARG DS01_GID=1000
ARG DS01_USER=user
RUN set -e; \
    if [ "$DS01_UID" != 0 ]; then \
      old=$(sed -n "s/^\([^:]*\):[^:]*:$DS01_UID:.*/\1/p" /etc/passwd); \
      for name in $old "$DS01_USER"; do \
        sed -i "/^$name:/d" /etc/passwd; \
        if [ -f /etc/shadow ]; then sed -i "/^$name:/d" /etc/shadow; fi; \
      done; \
      if ! grep -q "^[^:]*:[^:]*:$DS01_GID:" /etc/group; then \
        sed -i "/^$DS01_USER:/d" /etc/group; \
        echo "$DS01_USER:x:$DS01_GID:" >> /etc/group; \
      fi; \
      shell=/bin/sh; if [ -x /bin/bash ]; then shell=/bin/bash; fi; \
      home="/home/$DS01_USER"; \
      entry="$DS01_USER:x:$DS01_UID:$DS01_GID"; \
      echo "$entry:$DS01_USER:$home:$shell" >> /etc/passwd; \
      if [ -f /etc/shadow ]; then echo "$DS01_USER:!:19000:0:99999:7:::" >> /etc/shadow; fi; \
      mkdir -p "$home"; \
      chown "$DS01_UID:$DS01_GID" "$home"; \
    fi
ENV HOME=/home/${DS01_USER}
WORKDIR /workspace
USER ${DS01_UID}:${DS01_GID}
