# PostgreSQL for local development, the same major version the scripts use.
#   docker build -f docker/db.Dockerfile -t booking-db .
FROM postgres:15-bookworm
ENV POSTGRES_DB=booking POSTGRES_USER=booking
# POSTGRES_PASSWORD comes from the environment or a secret (POSTGRES_PASSWORD_FILE), never from here.
# Exec form: pg_isready exits 0 when the server accepts connections, non-zero otherwise.
HEALTHCHECK --interval=5s --timeout=3s CMD ["pg_isready", "-U", "booking", "-d", "booking"]
