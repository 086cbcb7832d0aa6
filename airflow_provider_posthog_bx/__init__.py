"""Apache Airflow provider for PostHog batch exports."""

__version__ = "0.1.0"
