FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CRONTASK_VAR_DIR=/app/var STATIC_ROOT=/app/static
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are collected into the image; whitenoise serves them. The key is for this step only.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --create-home crontask && mkdir -p /app/var/metrics && chown -R crontask /app/var
USER crontask
EXPOSE 8000
# gunicorn.conf.py: processes and threads sized from the CPUs (WEB_CONCURRENCY, WEB_THREADS), port 8000.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn -c gunicorn.conf.py crontask.wsgi"]
