package pipeline

// QueueDepths reports how many live changes and snapshot rows are waiting
// for a worker, for the queue depth gauges.
func (p *Pipeline) QueueDepths() (live, backfill int) {
	for i := range p.queues {
		live += len(p.queues[i])
		backfill += len(p.backfillQueues[i])
	}
	return live, backfill
}
