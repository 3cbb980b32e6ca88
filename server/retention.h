/* retention: personal data is kept no longer than needed (GDPR art. 5(1)(e)).
 *
 * A job (jobs.h) that applies the configured periods through the database's retention_run()
 * (migrations/0008_retention.sql says what each period does, and why): inquiries that never became
 * a werklab are deleted, the people of werklabs closed long ago are anonymised, old audit entries
 * are deleted. Its changes enter the change feed as every write does.
 *
 * Instances that share a database take turns: the job runs only on the instance that holds its
 * lock (jobs.h, JOBS_LOCK_RETENTION), and the others skip their turn without a word. The
 * database's retention_run() tries the same lock for its own transaction, so that a run started
 * some other way (by hand in SQL) takes turns with the job too.
 *
 * Every run that takes place writes one audit entry in the transaction of its effect, so that the
 * entry is in the log exactly when the effect is committed — also a run that found nothing to
 * remove, so that the log shows the periods were applied: action "retention", no key, status 200,
 * and as its resource what it did, in counts, never personal data: "inquiries=2 participants=12
 * contacts=1 mentions=3 auditEntries=5000". A run that fails changes nothing and is logged; the
 * next one tries again. */
#ifndef WERKLAB_RETENTION_H
#define WERKLAB_RETENTION_H

/* Before the job first runs. The database refuses periods below its floors (30, 30, 180 days). */
void retention_configure(unsigned inquiry_days, unsigned participant_days, unsigned audit_days);
/* One run, on the calling thread's database connection (the jobs thread). */
void retention_run(void);

#endif
