package index

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeadOptions tune leader election; zero values take the defaults.
type LeadOptions struct {
	// Retry is how often a follower tries to take the lock (default 1 s).
	Retry time.Duration
	// Check is how often the leader confirms its lock connection is alive,
	// and how long it waits for the answer (default 1 s).
	Check time.Duration
	// Grace is how long a new leader waits after taking the lock before it
	// acts (default 3 s): longer than a deposed leader needs to notice it
	// lost its connection (Check plus its timeout) and stop, so two
	// instances never act at once.
	Grace time.Duration
	// OnChange, if set, is told each time this process becomes leader
	// (true) or stops being it (false).
	OnChange func(leader bool)
}

func (o *LeadOptions) defaults() {
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.Check <= 0 {
		o.Check = time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 3 * time.Second
	}
	if o.OnChange == nil {
		o.OnChange = func(bool) {}
	}
}

// Lead runs fn while this process is the one leader among the instances
// sharing the database, until ctx ends. fn's context ends when leadership
// is lost, and Lead waits for fn to return before it campaigns again; fn
// returning early gives leadership up.
//
// On PostgreSQL the leader holds a session-level advisory lock on a
// connection of its own. PostgreSQL releases the lock the moment that
// connection ends (the process died, pg_terminate_backend) or, for a silent
// network partition, when TCP keepalives give up (about 11 s, set on the
// connection); the leader pings every Check and stops acting as soon as a
// ping fails, and a new leader waits Grace after taking the lock, so the
// old one has stopped before the new one starts. A kill -9 hands over in
// about Retry+Grace.
//
// On SQLite there is one machine: this process leads at once (the sync
// file lock still orders it with CLI commands).
func (db *DB) Lead(ctx context.Context, opts LeadOptions, fn func(ctx context.Context)) error {
	opts.defaults()
	if db.pg == nil {
		opts.OnChange(true)
		fn(ctx)
		opts.OnChange(false)
		return nil
	}
	for ctx.Err() == nil {
		db.leadOnce(ctx, opts, fn)
		select {
		case <-ctx.Done():
		case <-time.After(opts.Retry):
		}
	}
	return nil
}

// leadOnce dials a lock connection, campaigns on it until it wins (or the
// connection fails), then leads until the connection fails, fn returns or
// ctx ends.
func (db *DB) leadOnce(ctx context.Context, opts LeadOptions, fn func(ctx context.Context)) {
	conn, err := db.pg.dialLock(ctx)
	if err != nil {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var got bool
		qctx, cancel := context.WithTimeout(ctx, opts.Check)
		err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1, $2)", lockClassLeader, db.pg.key).Scan(&got)
		cancel()
		if err != nil {
			return
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(opts.Retry):
		}
	}
	alive := func() bool {
		qctx, cancel := context.WithTimeout(ctx, opts.Check)
		defer cancel()
		_, err := conn.Exec(qctx, "SELECT 1")
		return err == nil
	}
	// Grace: a deposed leader may not have noticed yet. Keep checking that
	// the lock is still ours meanwhile.
	for deadline := time.Now().Add(opts.Grace); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(opts.Check, time.Until(deadline))):
		}
		if !alive() {
			return
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	opts.OnChange(true)
	go func() {
		defer close(done)
		fn(lctx)
	}()
	t := time.NewTicker(opts.Check)
	defer t.Stop()
	for lctx.Err() == nil {
		select {
		case <-lctx.Done():
		case <-done:
			cancel()
		case <-t.C:
			if !alive() {
				cancel()
			}
		}
	}
	cancel()
	<-done
	opts.OnChange(false)
}

// dialLock opens a connection of its own for a session-level lock, with
// server-side keepalives short enough that PostgreSQL drops a silent
// client, and its locks, within about 11 s.
func (pg *pgState) dialLock(ctx context.Context) (*pgx.Conn, error) {
	cfg := pg.cfg.Copy()
	cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["tcp_user_timeout"] = "11000"
	cfg.RuntimeParams["application_name"] = "promptvault-lock"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// SyncLock serialises syncs across every process on the database: on
// PostgreSQL a session-level advisory lock on a connection of its own (a
// CLI sync beside the leader's waits for it); on SQLite nothing, since the
// data directory's file lock does it. unlock releases it.
func (db *DB) SyncLock(ctx context.Context) (unlock func(), err error) {
	if db.pg == nil {
		return func() {}, nil
	}
	conn, err := db.pg.dialLock(ctx)
	if err != nil {
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClassSync, db.pg.key); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	return func() { conn.Close(context.WithoutCancel(ctx)) }, nil
}

// Ping checks that the database answers (for /readyz).
func (db *DB) Ping(ctx context.Context) error {
	return db.r.PingContext(ctx)
}
