package redis

import "github.com/pubsubd/pubsub/internal/domain"

// keys builds every Redis key and channel name the engine uses, in one place. A topic's keys share
// the hash tag {topic}, so each script touches one slot per topic and a Redis Cluster mode can
// come later; the cluster-wide keys (the topic index, the replicas) are few and small.
//
//	<p>{t}:m   HASH    the topic's meta: epoch e, seq s, history bytes b, created c (ms). Its existence
//	                   is the authority for "the topic exists".
//	<p>{t}:h   STREAM  the history: entry <seq>-0 with the encoded event b and its size z
//	<p>{t}:c   channel every event and control notice of the topic, in seq order
//	<p>{t}:o   HASH    client id -> replica holding its subscription (takeover across replicas)
//	<p>topics  HASH    topic -> epoch: the list (joined with the meta, so an orphan is skipped)
//	<p>r:<id>  HASH    topic -> this replica's subscriber count, with a TTL renewed by the heartbeat
//	<p>replicas ZSET   replica id -> last heartbeat (unix ms)
//	<p>node:<id> channel messages to one replica (takeover, the idle probe's echo)
type keys struct{ prefix string }

func (k keys) tag(t domain.TopicName) string { return k.prefix + "{" + string(t) + "}:" }

func (k keys) meta(t domain.TopicName) string    { return k.tag(t) + "m" }
func (k keys) history(t domain.TopicName) string { return k.tag(t) + "h" }
func (k keys) channel(t domain.TopicName) string { return k.tag(t) + "c" }
func (k keys) owners(t domain.TopicName) string  { return k.tag(t) + "o" }
func (k keys) topics() string                    { return k.prefix + "topics" }
func (k keys) replica(id string) string          { return k.prefix + "r:" + id }
func (k keys) replicas() string                  { return k.prefix + "replicas" }
func (k keys) node(id string) string             { return k.prefix + "node:" + id }

// topicOf returns the topic whose channel is ch, and whether ch is a topic channel of this prefix.
func (k keys) topicOf(ch string) (domain.TopicName, bool) {
	n := len(k.prefix)
	if len(ch) < n+4 || ch[:n] != k.prefix || ch[n] != '{' || ch[len(ch)-3:] != "}:c" {
		return "", false
	}
	return domain.TopicName(ch[n+1 : len(ch)-3]), true
}
