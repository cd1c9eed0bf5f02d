# The chat server as one image: daphne serving backend.asgi:application.
# It mirrors `make run`: install the pinned requirements, migrate, start daphne.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time (a throwaway secret is enough for
# that step) and served by WhiteNoise.
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=build-only-not-a-secret-build-only-not-a-secret-0123456789 \
    ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput \
 && useradd --create-home --uid 10001 chat \
 && mkdir -p /app/media \
 && chown -R chat:chat /app/media

USER chat
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

# Migrations run once, before the replicas start: docker-compose's `migrate`
# service (elsewhere: `python manage.py migrate --noinput` as a one-off job).
# The client address comes from nginx's X-Real-IP (deploy/nginx.conf), which nginx
# sets from the connection; port 8000 must be reachable only through nginx, since
# anyone who reaches daphne directly could set that header.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "--proxy-headers-host", "X-Real-IP", "backend.asgi:application"]
