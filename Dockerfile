# labelwise: one image for the API, the worker and the one-shot migration (see docker-compose.yml).
#   docker build -t labelwise .
# Stage 1 installs CPU-only torch and labelwise into a virtualenv and exports the default model to ONNX;
# stage 2 copies the virtualenv and the ONNX file onto a slim base without compilers or pip caches.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    PATH=/opt/venv/bin:$PATH
# torch from PyTorch's CPU index first, so pip never resolves a multi-GB CUDA build for the project.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY labelwise ./labelwise
RUN pip install --no-cache-dir . \
    && python -m labelwise.classify.onnx_export all-MiniLM-L6-v2 /opt/labelwise/onnx \
    && python -c "import torch; assert not torch.cuda.is_available() and '+cpu' in torch.__version__, torch.__version__"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="labelwise" \
      org.opencontainers.image.description="Zero-shot text classification on a message queue" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    LABELWISE_HOME=/var/lib/labelwise \
    LABELWISE_ONNX_DIR=/opt/labelwise/onnx
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/labelwise --create-home --shell /usr/sbin/nologin labelwise
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/labelwise/onnx /opt/labelwise/onnx
USER 10001:10001
WORKDIR /var/lib/labelwise
# 8000: the HTTP API; 9100: worker metrics (labelwise worker --metrics-port 9100 --metrics-host 0.0.0.0)
EXPOSE 8000 9100
ENTRYPOINT ["labelwise"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
