FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home crontask && mkdir -p /app/var && chown crontask /app/var
USER crontask
EXPOSE 8000
CMD ["gunicorn", "crontask.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
