# RaGAN in a container: the library and the `ragan` command, installed exactly as the README installs it (by
# scripts/setup.sh, from this checkout), run as an unprivileged user.
#
#   docker build -t ragan .                                  # CPU
#   docker build -t ragan:gpu --build-arg EXTRAS=gpu .       # NVIDIA GPUs (TensorFlow's CUDA libraries from pip)
#   docker run --rm -v "$PWD/work:/work" ragan               # the demo, written to ./work/ragan-demo
#   docker run --rm --gpus all -v "$PWD/runs:/work" ragan:gpu train --dataset /work/Dataset001_Liver --out /work/liver
#
# The run folder lives on the mounted volume, so a stopped or crashed container's run resumes in the next one
# (`ragan train --resume --out /work/liver`). The host folder must be writable by uid 1000 (or pass `--user`).
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim

# "" for the CPU build, "gpu" for TensorFlow with CUDA: an extra of pyproject.toml, as scripts/setup.sh takes it.
ARG EXTRAS=""

RUN useradd --create-home --uid 1000 ragan
WORKDIR /opt/ragan
COPY --chown=ragan:ragan . .
USER ragan
RUN PYTHON=python3 bash scripts/setup.sh ${EXTRAS} && rm -rf /home/ragan/.cache/pip
ENV PATH=/opt/ragan/.venv/bin:$PATH

WORKDIR /work
ENTRYPOINT ["ragan"]
CMD ["demo", "--out", "/work/ragan-demo"]
