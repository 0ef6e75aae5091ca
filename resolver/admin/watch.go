package admin

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// pointerActions are the audit actions that move a pointer.
var pointerActions = map[string]bool{
	index.ActBootstrap: true, index.ActPromote: true, index.ActRollback: true,
	index.ActStagingSet: true, index.ActStagingClear: true, index.ActArchive: true,
}

// CountPointerMoves feeds promptvault_pointer_moves_total from the audit
// log until ctx ends. Following the log, rather than counting in the admin
// handlers, sees every mover (API, CLI in another process, webhook worker,
// sync's auto-promotion) once, by the action it was audited with. Moves
// made before the call are not counted. fallback bounds the wait for a
// change wake-up (index.WatchOptions).
func CountPointerMoves(ctx context.Context, db *index.DB, fallback time.Duration, log *slog.Logger) error {
	var after int64
	err := db.View(ctx, func(tx *index.Tx) error {
		es, err := tx.AuditLog(ctx, 0, 1)
		if len(es) > 0 {
			after = es[0].Seq
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("count pointer moves: %w", err)
	}
	var from int64
	err = db.View(ctx, func(tx *index.Tx) (err error) {
		from, err = tx.LastChange(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("count pointer moves: %w", err)
	}
	for ctx.Err() == nil {
		err := db.Watch(ctx, from, index.WatchOptions{Fallback: fallback}, func(cs []index.Change) {
			from = cs[len(cs)-1].Seq
			for {
				var es []index.AuditEntry
				err := db.View(ctx, func(tx *index.Tx) (err error) {
					es, err = tx.AuditSince(ctx, after, 500)
					return err
				})
				if err != nil {
					if ctx.Err() == nil {
						log.Error("count pointer moves", "err", err)
					}
					return // the next change retries from after
				}
				for _, e := range es {
					after = e.Seq
					if pointerActions[e.Action] || (e.Env != "" && e.Key != "" && e.Action != index.ActPromotionRefused && e.Action != index.ActDraftDelete) {
						metrics.PointerMove(e.Action, e.Env)
					}
				}
				if len(es) < 500 {
					return
				}
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		log.Error("count pointer moves: watch; restarting in 1s", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}
