package redis

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Replicas returns this replica (first, its counts live) and every other replica with a fresh
// heartbeat (within three intervals, the rule the cluster's sums use), each with the counts it
// wrote at that heartbeat, in id order. It reads what the heartbeats already keep (the replicas
// set and each replica's counts), one round trip for the set and one for the counts.
func (e *Engine) Replicas(ctx context.Context) ([]domain.ReplicaStats, error) {
	self := domain.ReplicaStats{ID: e.opts.Replica, Self: true}
	for _, n := range e.localSubscribers() {
		self.Topics++
		self.Subscribers += n
	}
	out := []domain.ReplicaStats{self}
	err := e.call(ctx, "stats", func(ctx context.Context) error {
		since := time.Now().Add(-3 * e.opts.Heartbeat).UnixMilli()
		fresh, err := e.client.Do(ctx, e.client.B().Zrangebyscore().Key(e.keys.replicas()).
			Min(strconv.FormatInt(since, 10)).Max("+inf").Withscores().Build()).AsZScores()
		if err != nil {
			return err
		}
		var others []domain.ReplicaStats
		cmds := make(rueidis.Commands, 0, len(fresh))
		for _, z := range fresh {
			if z.Member == e.opts.Replica {
				continue
			}
			others = append(others, domain.ReplicaStats{ID: z.Member, Heartbeat: time.UnixMilli(int64(z.Score)).UTC()})
			cmds = append(cmds, e.client.B().Hgetall().Key(e.keys.replica(z.Member)).Build())
		}
		if len(cmds) == 0 {
			return nil
		}
		for i, r := range e.client.DoMulti(ctx, cmds...) {
			m, err := r.AsIntMap()
			if err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
			for _, n := range m {
				if n > 0 {
					others[i].Topics++
					others[i].Subscribers += int(n)
				}
			}
		}
		// In id order, so the list does not move between reads.
		slices.SortFunc(others, func(a, b domain.ReplicaStats) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, others...)
		return nil
	})
	if err != nil {
		return nil, errorOf(err, "", e.cfg)
	}
	return out, nil
}
