# Mirrors `make run`: the CPU build of torch first, then Docent (which compiles the engine),
# then the app on port 8501. Data lives in /data (mount a volume there).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python -m pip install --no-cache-dir --upgrade pip \
    && python -m pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY . .
RUN python -m pip install --no-cache-dir . && rm -rf build

ENV DOCENT_HOME=/data
VOLUME /data
EXPOSE 8501
CMD ["docent", "serve", "--host", "0.0.0.0", "--port", "8501"]
