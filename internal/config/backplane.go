package config

import (
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Backplane chooses the engine that holds topics (issue #12): the in-memory one, for one process,
// or Redis, which lets several replicas act as one service.
type Backplane struct {
	Broker string // "memory" (the default) or "redis"
	// RedisURL is redis://[user:password@]host:port[/db] or rediss:// for TLS. With Sentinel it
	// carries the credentials and database only; the address comes from the sentinels.
	RedisURL       string
	SentinelMaster string   // the master's name at the sentinels; Sentinel mode when set
	SentinelAddrs  []string // host:port of each sentinel
	// RedisTimeout bounds one Redis call (dial, command, the probe's echo): a call that takes longer
	// fails as unavailable rather than holding a publisher.
	RedisTimeout time.Duration
	// ReplicaID names this process among the replicas; empty means hostname plus a random suffix,
	// made new at each start so that a restarted pod never inherits the counts of its previous life.
	ReplicaID string
}

// Redis reports whether the Redis engine is chosen.
func (b Backplane) Redis() bool { return b.Broker == "redis" }

// backplaneSettings are the engine's settings (issue #12).
func backplaneSettings() []setting {
	p := func(c *Config) *Backplane { return &c.Backplane }
	return []setting{
		{"broker", "PUBSUB_BROKER", "memory", "engine that holds topics: memory (one process) or redis (several replicas share topics)", func(c *Config, v string) error {
			switch v {
			case "memory", "redis":
				p(c).Broker = v
				return nil
			}
			return errors.New("accepted values are memory, redis")
		}},
		{"redis-url", "PUBSUB_REDIS_URL", "", "Redis for PUBSUB_BROKER=redis: redis://[user:password@]host:port[/db], rediss:// for TLS", func(c *Config, v string) error {
			if v != "" {
				if err := checkRedisURL(v); err != nil {
					return err
				}
			}
			p(c).RedisURL = v
			return nil
		}},
		{"redis-sentinel-master", "PUBSUB_REDIS_SENTINEL_MASTER", "", "master name at the Redis Sentinels; turns Sentinel mode on (needs PUBSUB_REDIS_SENTINEL_ADDRS)", func(c *Config, v string) error {
			p(c).SentinelMaster = strings.TrimSpace(v)
			return nil
		}},
		{"redis-sentinel-addrs", "PUBSUB_REDIS_SENTINEL_ADDRS", "", "comma-separated host:port of the Redis Sentinels", func(c *Config, v string) error {
			p(c).SentinelAddrs = nil
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a == "" {
					continue
				}
				if _, _, err := net.SplitHostPort(a); err != nil {
					return errors.New("accepted values are comma-separated host:port pairs")
				}
				p(c).SentinelAddrs = append(p(c).SentinelAddrs, a)
			}
			return nil
		}},
		{"redis-timeout", "PUBSUB_REDIS_TIMEOUT", "2s", "bound on one Redis call, a dial and the pub/sub probe's echo (Go duration)", func(c *Config, v string) error {
			return duration(&p(c).RedisTimeout, v, 10*time.Millisecond)
		}},
		{"replica-id", "PUBSUB_REPLICA_ID", "", "name of this replica among those sharing a Redis (empty: hostname and a random suffix, new at each start)", func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if len(v) > 128 || strings.ContainsAny(v, " \t\r\n{}") {
				return errors.New("accepted values are up to 128 characters without spaces or braces")
			}
			p(c).ReplicaID = v
			return nil
		}},
	}
}

// checkRedisURL accepts what the Redis client accepts: redis:// or rediss://, a host, an optional
// numeric database as the path.
func checkRedisURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return errors.New("accepted values are redis://[user:password@]host:port[/db] or the same with rediss://")
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		for _, r := range db {
			if r < '0' || r > '9' {
				return errors.New("the database (the URL's path) must be a number")
			}
		}
	}
	return nil
}

// validate refuses engine settings that only make sense together.
func (b Backplane) validate() error {
	sentinel := b.SentinelMaster != "" || len(b.SentinelAddrs) > 0
	switch {
	case !b.Redis() && (b.RedisURL != "" || sentinel):
		return &Error{Msg: "PUBSUB_REDIS_URL and PUBSUB_REDIS_SENTINEL_* need PUBSUB_BROKER=redis"}
	case b.Redis() && b.RedisURL == "" && !sentinel:
		return &Error{Msg: "PUBSUB_BROKER=redis needs PUBSUB_REDIS_URL or PUBSUB_REDIS_SENTINEL_MASTER with PUBSUB_REDIS_SENTINEL_ADDRS"}
	case (b.SentinelMaster == "") != (len(b.SentinelAddrs) == 0):
		return &Error{Msg: "PUBSUB_REDIS_SENTINEL_MASTER and PUBSUB_REDIS_SENTINEL_ADDRS go together"}
	}
	return nil
}

// LogValue logs the engine's settings without the password of the URL.
func (b Backplane) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("broker", b.Broker)}
	if b.Redis() {
		attrs = append(attrs, slog.String("redis_url", redactURL(b.RedisURL)),
			slog.String("sentinel_master", b.SentinelMaster), slog.Any("sentinel_addrs", b.SentinelAddrs),
			slog.String("redis_timeout", b.RedisTimeout.String()), slog.String("replica_id", b.ReplicaID))
	}
	return slog.GroupValue(attrs...)
}

func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || v == "" {
		return v
	}
	return u.Redacted()
}
