"""PostHog's rules, pure: no I/O and no Airflow of their own; each rule once.

Both transports (the sync hook and the async triggers) and every Airflow class drive these:

- :mod:`.time`: reading and writing instants (one parser, one formatter, one rule for naive
  values).
- :mod:`.statuses`: run and backfill statuses (in flight, final, failed) and their log lines.
- :mod:`.bounds`: checking backfill bounds and formatting them for an export's interval.
- :mod:`.runs`: finding the run of a data interval, and the runs that did not succeed.
- :mod:`.logs`: the logs cursor, the scan that reads every new entry once, and what an entry
  means for a wait.
- :mod:`.waiting`: deadlines, the transient-error streak, the not-visible-yet grace, the cancel
  schedule and what a trigger event means.

Errors for bad input are :class:`~airflow_provider_posthog_bx.exceptions.PostHogInputError`
(it derives from Airflow's task exceptions so that Airflow does not retry them).
"""
