package redis

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// PublishBatch publishes every entry to name in one round trip (service.BatchPublisher): one
// EVALSHA of the publish script per entry, written together. Redis runs them in the order sent, so
// the seqs follow the entries' order, and each script is the same atomic step as a lone Publish.
// An entry whose script was refused (the topic is gone) gets that error; when the connection
// fails, every entry whose reply did not come back fails with KindUnavailable: it may or may not
// have been stored, and nothing is acknowledged that is not known stored.
func (e *Engine) PublishBatch(ctx context.Context, name domain.TopicName, entries []service.BatchEntry) {
	now := e.now()
	st := e.lookup(name)
	keys := e.publishKeys(name)
	encs := make([]encoded, len(entries))
	cmds := make(rueidis.Commands, 0, len(entries))
	at := make([]int, 0, len(entries)) // cmds[k] publishes entries[at[k]]
	for i := range entries {
		// Each entry is weighed against the event memory as it is now, as concurrent publishes
		// are: the replicas that receive the events charge them and announce a gap when they
		// cannot hold one, so a batch (at most the transport's 64) cannot overrun them silently.
		enc, err := e.prepare(st, name, entries[i].Msg, now)
		if err != nil {
			entries[i].Err = err
			continue
		}
		encs[i] = enc
		cmds = append(cmds, e.client.B().Evalsha().Sha1(publishSHA).Numkeys(int64(len(keys))).Key(keys...).Arg(e.publishArgs(enc)...).Build())
		at = append(at, i)
	}
	if len(cmds) == 0 {
		return
	}
	seqs := make([]uint64, len(cmds))
	errs := make([]error, len(cmds))
	_ = e.call(ctx, "publish", func(ctx context.Context) error {
		res := e.client.DoMulti(ctx, cmds...)
		var retry []int // commands Redis did not run: it had lost the script (a restart, SCRIPT FLUSH)
		for k := range res {
			if re, ok := rueidis.IsRedisErr(res[k].Error()); ok && re.IsNoScript() {
				retry = append(retry, k)
				continue
			}
			seqs[k], errs[k] = publishSeq(res[k])
		}
		if len(retry) > 0 {
			// EVAL carries the script's source and caches it again. The lost commands are sent
			// again in their order: their seqs still follow the entries' order unless another
			// client reloaded the script while this batch was on its way, which only a SCRIPT
			// FLUSH in the middle of a batch can do.
			again := make(rueidis.Commands, len(retry))
			for j, k := range retry {
				i := at[k]
				again[j] = e.client.B().Eval().Script(publishSource).Numkeys(int64(len(keys))).Key(keys...).Arg(e.publishArgs(encs[i])...).Build()
			}
			for j, r := range e.client.DoMulti(ctx, again...) {
				seqs[retry[j]], errs[retry[j]] = publishSeq(r)
			}
		}
		for _, err := range errs {
			if err != nil {
				return err // the call's span and error count say the batch was not all stored
			}
		}
		return nil
	})
	for k, i := range at {
		if errs[k] != nil {
			entries[i].Err = errorOf(errs[k], name, e.cfg)
			continue
		}
		entries[i].Event, entries[i].Stats, entries[i].Err = e.published(ctx, st, name, seqs[k], encs[i], now)
	}
}

// The Redis engine publishes batches in one round trip.
var _ service.BatchPublisher = (*Engine)(nil)
