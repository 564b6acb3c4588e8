# stnas image: installs exactly as `make install` does (tools/install.sh).
#   CPU:  docker build -t stnas .
#   CUDA: docker build -t stnas:cuda --build-arg BASE=nvidia/cuda:12.8.0-cudnn-runtime-ubuntu24.04 \
#           --build-arg TORCH_INDEX_URL=<index with CUDA torch wheels> .
#   run:  docker run --rm -it stnas make demo
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_INDEX_URL=
ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 TORCH_INDEX_URL=${TORCH_INDEX_URL}
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends make git python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/stnas
COPY . .
RUN bash tools/install.sh --venv /opt/stnas/.venv && rm -rf /root/.cache/pip /var/lib/apt/lists/*
ENV PATH=/opt/stnas/.venv/bin:$PATH
CMD ["make", "demo"]
