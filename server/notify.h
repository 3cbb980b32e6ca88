/* notify: revocations made on other instances, heard at once through PostgreSQL LISTEN/NOTIFY.
 *
 * The database announces on the channel werklab_revoked, with the key's id as the payload, every
 * commit that revokes a key or changes what an instance keeps of one (the trigger
 * api_keys_announce, migrations/0013_revocation_notify.sql). A thread of its own keeps one
 * connection that LISTENs on it (application_name 'werklabd-notify', so that it can be found in
 * pg_stat_activity) and, as each notification arrives, drops that key from the key cache
 * (auth_forget()). Nothing else runs on that connection.
 *
 * Notifications sent while the connection is down are lost, so whenever it is made (at start,
 * and again after a loss) the whole cache is emptied once LISTEN is in place (auth_forget_all()):
 * a key revoked meanwhile is looked up again. While it is down the cache period
 * (WERKLAB_KEY_CACHE_MS) is the bound, as without this module. A lost connection is made again by
 * the thread, with db.h's back-off; on TCP, keep-alive probes find a peer that went away without
 * a word within about 25 seconds (a listener that only reads would otherwise never notice).
 *
 * /metrics shows the connection as werklabd_db_connection_up{connection="notify"} and counts the
 * notifications heard. /readyz counts it among the connections the server keeps: an instance
 * that cannot hear revocations is correct only within the cache period, and is better left out
 * of a load balancer's rotation until it hears them again. */
#ifndef WERKLAB_NOTIFY_H
#define WERKLAB_NOTIFY_H

#include "buf.h"
#include "metrics.h"

#include <stddef.h>

#define NOTIFY_CHANNEL          "werklab_revoked"
#define NOTIFY_APPLICATION_NAME "werklabd-notify"

/* Starts the listener (after db_configure(), with the signals the process takes blocked) and
 * waits until its first connection attempt is over (at most the connect timeout). 0, or -1 with
 * a message logged. */
int notify_start(void);
/* Ends the thread and closes its connection. */
void notify_stop(void);
/* The listener's connection, as one metrics_connection of kind "notify", into out: 1 or 0. */
size_t notify_connections(struct metrics_connection *out, size_t max);
/* werklabd_revocation_notifications_total: notifications heard. */
void notify_render(struct buf *out);

#endif
