package indexer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/reindex"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// versions keeps each configured collection's physical versions in step
// with the configuration (package reindex has the rules and why): at a
// start it follows reindex.Next until every collection is settled, and
// while `run` streams it starts requested reindexes, switches filled
// versions and deletes retired ones.
type versions struct {
	env   *Env
	cfg   *config.Config
	store *snapshot.Store // backfill requests
	log   zerolog.Logger
	pipe  *pipeline.Pipeline // nil before the pipeline exists (at a start)
	// metrics, when set, gets each collection's version numbers.
	metrics *metrics.Metrics
}

func newVersions(e *Env, cfg *config.Config, log zerolog.Logger) *versions {
	return &versions{env: e, cfg: cfg, log: log, store: snapshot.NewStore(e.Pool, cfg.Postgres.StateSchema, cfg.Postgres.Slot)}
}

// collections are the configured collection names, in configuration order.
func collections(cfg *config.Config) []string {
	var out []string
	for _, t := range cfg.Tables {
		if !slices.Contains(out, t.Collection) {
			out = append(out, t.Collection)
		}
	}
	return out
}

// specOf is what the configuration says shapes collection's objects.
func specOf(cfg *config.Config, collection string) reindex.Spec {
	s := reindex.Spec{MaxTokens: cfg.Chunking.MaxTokens, Overlap: cfg.Chunking.Overlap, Embedding: embeddingSpec(cfg.Embedding)}
	for _, t := range cfg.Tables {
		if t.Collection == collection {
			s.Mappings = append(s.Mappings, reindex.Mapping{Table: tableKey(t.Table), Template: t.Template, Metadata: t.Metadata, Tenant: t.Tenant})
		}
	}
	return s.Normalize()
}

// tableKey is a configured table name in its canonical form, so that
// `articles` and `public.articles` are one mapping.
func tableKey(table string) string {
	if n, err := connector.ParseTableName(table); err == nil {
		return n.String()
	}
	return table
}

func embeddingSpec(c config.Embedding) reindex.Embedding {
	e := reindex.Embedding{Provider: c.Provider, Dimensions: embeddingDimensions(c)}
	switch c.Provider {
	case config.ProviderOpenAI:
		e.Model = c.Model
	case config.ProviderNone:
		e.Vectorizer, e.VectorizerConfig = vectorizerSpec(c)
	}
	return e
}

// embeddingConfig is c with spec's model: how a version built with
// another model is embedded (the provider's address and key stay c's).
func embeddingConfig(c config.Embedding, spec reindex.Embedding) config.Embedding {
	c.Provider, c.Model, c.Dimensions = spec.Provider, spec.Model, spec.Dimensions
	if spec.Provider == config.ProviderNone {
		c.Vectorizer, c.VectorizerConfig = spec.Vectorizer, spec.VectorizerConfig
	}
	return c
}

// settle brings every configured collection to a settled state at a start
// (reindex.Next) and returns the mappings of every serving and filling
// version, for the pipeline.
func (v *versions) settle(ctx context.Context) ([]*pipeline.Table, error) {
	var out []*pipeline.Table
	for _, name := range collections(v.cfg) {
		spec := specOf(v.cfg, name)
		fp := spec.Fingerprint()
		var last reindex.Step
		for n := 0; ; n++ {
			sit, err := v.situation(ctx, name, fp)
			if err != nil {
				return nil, err
			}
			step := reindex.Next(sit)
			if step == reindex.StepNone {
				break
			}
			if n > 8 {
				return nil, fmt.Errorf("collection %s: its versions do not settle (still at %q after %q)", name, step, last)
			}
			if err := v.take(ctx, sit, step, spec); err != nil {
				return nil, fmt.Errorf("collection %s: %s: %w", name, step, err)
			}
			last = step
		}
		serving, filling, _, err := v.env.State.Versions(ctx, name)
		if err != nil {
			return nil, err
		}
		tables, err := v.inUse(ctx, name, serving, filling)
		if err != nil {
			return nil, err
		}
		out = append(out, tables...)
	}
	return out, nil
}

// situation reads what reindex.Next decides on.
func (v *versions) situation(ctx context.Context, name, fp string) (reindex.Situation, error) {
	sit := reindex.Situation{Collection: name, Fingerprint: fp}
	var err error
	if sit.Serving, sit.Filling, _, err = v.env.State.Versions(ctx, name); err != nil {
		return sit, err
	}
	if sit.Requested, err = v.env.State.ReindexRequested(ctx, name); err != nil {
		return sit, err
	}
	if sit.AliasTarget, err = v.env.Sink.Alias(ctx, name); err != nil {
		return sit, err
	}
	if sit.AliasTarget == "" {
		// With no alias of the name, a class of the name is a plain
		// collection (getClass would resolve an alias to its target).
		if sit.PlainExists, err = v.env.Sink.CollectionExists(ctx, name); err != nil {
			return sit, err
		}
	}
	return sit, nil
}

// take makes one step.
func (v *versions) take(ctx context.Context, sit reindex.Situation, step reindex.Step, spec reindex.Spec) error {
	st, name := v.env.State, sit.Collection
	switch step {
	case reindex.StepAdopt:
		ver := reindex.Version{Collection: name, Phase: reindex.PhaseServing, Spec: spec}
		switch {
		case sit.PlainExists:
			// A collection from before versions: it was built with what
			// the last start recorded, which may not be the configuration.
			ver.Physical, ver.Number = name, 0
			legacy, err := v.legacySpec(ctx, name, spec)
			if err != nil {
				return err
			}
			ver.Spec = legacy
		case sit.AliasTarget != "":
			ver.Physical, ver.Number = sit.AliasTarget, versionNumber(name, sit.AliasTarget)
		default:
			ver.Physical, ver.Number = reindex.PhysicalName(name, 1), 1
		}
		ver.Fingerprint = ver.Spec.Fingerprint()
		if err := st.AddVersion(ctx, ver); err != nil {
			return err
		}
		if ver.Physical == name {
			v.log.Info().Str("collection", name).Msg("serving the existing plain collection; its first reindex moves it behind an alias")
		}
		return v.ensureCollection(ctx, ver)
	case reindex.StepFinishSwitch:
		return st.RecordSwitch(ctx, name, v.retention())
	case reindex.StepAliasToFilling:
		if err := v.ensureCollection(ctx, *sit.Filling); err != nil {
			return err
		}
		return v.env.Sink.PointAlias(ctx, name, sit.Filling.Physical)
	case reindex.StepPointAlias:
		if err := v.ensureCollection(ctx, *sit.Serving); err != nil {
			return err
		}
		return v.env.Sink.PointAlias(ctx, name, sit.Serving.Physical)
	case reindex.StepDropFilling:
		v.log.Info().Str("collection", name).Str("version", sit.Filling.Physical).
			Msg("the configuration changed again before the reindex finished: abandoning its version")
		return v.drop(ctx, *sit.Filling)
	case reindex.StepStartFilling:
		return v.startFilling(ctx, sit, spec)
	case reindex.StepRequestBackfills:
		return v.requestBackfills(ctx, *sit.Filling)
	case reindex.StepConsumeRequest:
		return st.ConsumeReindexRequest(ctx, name)
	}
	return fmt.Errorf("unknown step %d", step)
}

// startFilling records a new version for the configuration and creates
// its collection. Its backfills are requested by the next step, once the
// pipeline writes to it (at a start: from its first change on).
func (v *versions) startFilling(ctx context.Context, sit reindex.Situation, spec reindex.Spec) error {
	st, name := v.env.State, sit.Collection
	n, err := st.NextVersion(ctx, name)
	if err != nil {
		return err
	}
	ver := reindex.Version{Collection: name, Number: n, Physical: reindex.PhysicalName(name, n),
		Phase: reindex.PhaseFilling, Fingerprint: spec.Fingerprint(), Spec: spec}
	if err := st.AddVersion(ctx, ver); err != nil {
		return err
	}
	if err := v.ensureCollection(ctx, ver); err != nil {
		return err
	}
	why := strings.Join(reindex.Changes(sit.Serving.Spec, spec), ", ")
	if why == "" {
		why = "asked for by `cdc-indexer reindex`"
	}
	v.log.Info().Str("collection", name).Str("serving", sit.Serving.Physical).Str("filling", ver.Physical).Str("changed", why).
		Msg("reindexing: filling a new version while the serving one keeps answering queries")
	return st.ConsumeReindexRequest(ctx, name)
}

// requestBackfills asks for every mapping of a filling version to be read
// into it, and records the requests, whose completion switches it.
func (v *versions) requestBackfills(ctx context.Context, ver reindex.Version) error {
	var ids []int64
	for _, m := range ver.Spec.Mappings {
		id, err := v.store.Enqueue(ctx, snapshot.TableRef{Collection: ver.Physical, SourceTable: m.Table})
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	return v.env.State.SetBackfills(ctx, ver.Physical, ids)
}

// drop deletes a version's collection and everything recorded for it. A
// retired plain collection (physical == its configured name) was deleted
// at the switch, and the name is the alias now: deleting "it" again would
// resolve the alias and delete the serving version.
func (v *versions) drop(ctx context.Context, ver reindex.Version) error {
	physical := ver.Physical
	if v.pipe != nil {
		v.pipe.RetireCollection(physical)
	}
	if physical == ver.Collection {
		return v.env.State.ForgetVersion(ctx, physical)
	}
	if err := v.env.Sink.DeleteCollection(ctx, physical); err != nil {
		if exists, cerr := v.env.Sink.CollectionExists(ctx, physical); cerr != nil || exists {
			return err
		}
	}
	return v.env.State.ForgetVersion(ctx, physical)
}

// versionNumber reads the number of a physical name made by
// reindex.PhysicalName; 0 for any other name.
func versionNumber(name, physical string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(physical, name+"_v"))
	if err != nil || !strings.HasPrefix(physical, name+"_v") {
		return 0
	}
	return n
}

// legacySpec is what a plain collection from before versions was built
// with: the template, metadata and chunking recorded per mapping
// (mapping_shapes) and the recorded embedding model (collections); the
// configuration where nothing was recorded.
func (v *versions) legacySpec(ctx context.Context, name string, now reindex.Spec) (reindex.Spec, error) {
	out := now
	out.Mappings = slices.Clone(now.Mappings)
	for i, m := range out.Mappings {
		shape, ok, err := v.env.State.MappingShape(ctx, name, m.Table)
		if err != nil {
			return out, err
		}
		if ok {
			out.Mappings[i].Template, out.Mappings[i].Metadata = shape.Template, shape.Metadata
			out.MaxTokens, out.Overlap = shape.MaxTokens, shape.Overlap
		}
	}
	model, err := v.env.State.CollectionModel(ctx, name)
	switch {
	case errors.Is(err, state.ErrNoCollectionModel):
		// No record: the stored vectors' length tells a dimensions change.
		if now.Embedding.Dimensions > 0 {
			dims, ok, err := v.env.Sink.CollectionVectorDimensions(ctx, name)
			if err != nil {
				return out, err
			}
			if ok {
				out.Embedding.Dimensions = dims
			}
		}
	case err != nil:
		return out, err
	default:
		if e, ok := parseModelID(model.ModelID, model.Dimensions); ok {
			out.Embedding = e
		}
	}
	return out.Normalize(), nil
}

// parseModelID reads back EmbeddingModelID's forms.
func parseModelID(id string, dims int) (reindex.Embedding, bool) {
	parts := strings.Split(id, "/")
	switch {
	case len(parts) == 3 && parts[0] == config.ProviderHash:
		return reindex.Embedding{Provider: config.ProviderHash, Dimensions: dims}, true
	case len(parts) >= 3 && parts[0] == config.ProviderOpenAI:
		return reindex.Embedding{Provider: config.ProviderOpenAI, Model: strings.Join(parts[1:len(parts)-1], "/"), Dimensions: dims}, true
	}
	return reindex.Embedding{}, false
}

// inUse returns the mappings of collection name's serving and filling
// versions, each rendered and embedded by its own spec, once their
// collections exist with every property the mappings need (one deleted by
// hand is created again, as a plain collection always was). While a new
// version fills, a serving version that cannot be built any more (its old
// model out of reach, a column its old template reads gone) is left out
// with a warning: it keeps answering queries unchanged until the switch.
func (v *versions) inUse(ctx context.Context, name string, serving, filling *reindex.Version) ([]*pipeline.Table, error) {
	var out []*pipeline.Table
	for _, ver := range []*reindex.Version{serving, filling} {
		if ver == nil {
			continue
		}
		ts, err := v.versionTables(*ver)
		if err == nil {
			err = v.ensureTables(ctx, *ver, ts)
		}
		if err != nil {
			if ver == serving && filling != nil {
				v.log.Warn().Err(err).Str("collection", name).Str("version", ver.Physical).
					Msg("the serving version cannot be updated while the reindex runs; it serves its current objects until the switch")
				continue
			}
			return nil, fmt.Errorf("collection %s: %w", name, err)
		}
		out = append(out, ts...)
	}
	return out, nil
}

// versionTables are the mappings of one version (versionMappings) with,
// when the version was built with other chunking or another model than the
// configuration's, an Encoding of its own.
func (v *versions) versionTables(ver reindex.Version) ([]*pipeline.Table, error) {
	tables, err := v.versionMappings(ver)
	if err != nil || ver.Spec.SameEncoding(specOf(v.cfg, ver.Collection)) {
		return tables, err
	}
	chunker, err := transform.NewChunker(ver.Spec.MaxTokens, ver.Spec.Overlap)
	if err != nil {
		return nil, fmt.Errorf("version %s: chunking: %w", ver.Physical, err)
	}
	emb := embeddingConfig(v.cfg.Embedding, ver.Spec.Embedding)
	e, err := buildEmbedder(emb, v.log)
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", ver.Physical, err)
	}
	enc := &pipeline.Encoding{Chunker: chunker, Embedder: withCache(e, emb, v.env.State, v.log)}
	for _, t := range tables {
		t.Encoding = enc
	}
	return tables, nil
}

// versionMappings are the mappings of one version: the described tables
// with the version's templates and metadata, writing into its collection,
// with object IDs over the configured name. They chunk and embed as the
// pipeline does (no Encoding): what building the collection needs.
func (v *versions) versionMappings(ver reindex.Version) ([]*pipeline.Table, error) {
	v.env.Sink.ServeAs(ver.Physical, ver.Collection)
	modelID := EmbeddingModelID(embeddingConfig(v.cfg.Embedding, ver.Spec.Embedding))
	var out []*pipeline.Table
	for _, m := range ver.Spec.Mappings {
		i := slices.IndexFunc(v.env.Infos, func(info connector.TableInfo) bool { return info.Name.String() == m.Table })
		if i < 0 {
			continue // no longer configured: the version keeps what it has of it
		}
		info := v.env.Infos[i]
		r, err := transform.NewRenderer(info, ver.Physical, m.Template, m.Metadata, modelID)
		if err != nil {
			return nil, fmt.Errorf("version %s of %s: %w", ver.Physical, m.Table, err)
		}
		if m.Tenant != "" {
			if err := r.WithTenant(info, m.Tenant); err != nil {
				return nil, fmt.Errorf("version %s of %s: tenant: %w", ver.Physical, m.Table, err)
			}
		}
		out = append(out, pipeline.NewTable(info, ver.Physical, r))
	}
	return out, nil
}

// ensureCollection creates a version's collection if it is missing (or
// adds properties it lacks) and records its model.
func (v *versions) ensureCollection(ctx context.Context, ver reindex.Version) error {
	tables, err := v.versionMappings(ver)
	if err != nil {
		return err
	}
	return v.ensureTables(ctx, ver, tables)
}

// ensureTables is ensureCollection for mappings already built.
func (v *versions) ensureTables(ctx context.Context, ver reindex.Version, tables []*pipeline.Table) error {
	emb := embeddingConfig(v.cfg.Embedding, ver.Spec.Embedding)
	for _, t := range tables {
		spec := sink.CollectionSpec{Name: ver.Physical, Metadata: t.Renderer.MetadataFields(), MultiTenant: t.Renderer.Tenant() != "",
			TextFilterable: v.cfg.Weaviate.TextFilterable}
		spec.Vectorizer, spec.VectorizerConfig = vectorizerSpec(emb)
		created, err := v.env.Sink.EnsureCollection(ctx, spec)
		if err != nil {
			return fmt.Errorf("create collection %s: %w", ver.Physical, err)
		}
		if created {
			v.log.Info().Str("collection", ver.Collection).Str("version", ver.Physical).Msg("created collection")
		}
	}
	return v.env.State.SaveCollectionModel(ctx, state.CollectionModel{Collection: ver.Physical, ModelID: EmbeddingModelID(emb), Dimensions: embeddingDimensions(emb)})
}

// minRetention is the least time a replaced version is kept: a query that
// resolved the alias just before it moved is still reading the old version
// (and so may a cluster node the alias change has not reached yet).
// Deleting that version at once makes such a query fail with "class not
// found" (the reindex tests' readers saw exactly that).
const minRetention = 5 * time.Second

// retention is how long a replaced version is kept.
func (v *versions) retention() time.Duration {
	return max(v.cfg.Reindex.Retention, minRetention)
}

// serve is the running connector's part, called from the backfiller's
// loop while it holds the slot's lock: start requested reindexes, switch
// versions whose fill is done, ask again for failed backfills, and delete
// retired versions whose retention passed.
func (v *versions) serve(ctx context.Context) {
	for _, name := range collections(v.cfg) {
		if err := v.serveCollection(ctx, name); err != nil && ctx.Err() == nil {
			v.log.Warn().Err(err).Str("collection", name).Msg("reindex")
		}
	}
	due, err := v.env.State.RetiredDue(ctx)
	if err != nil {
		if ctx.Err() == nil {
			v.log.Warn().Err(err).Msg("reading retired versions")
		}
		return
	}
	for _, ver := range due {
		if err := v.drop(ctx, ver); err != nil {
			v.log.Warn().Err(err).Str("version", ver.Physical).Msg("deleting a retired version")
			continue
		}
		v.log.Info().Str("collection", ver.Collection).Str("version", ver.Physical).Msg("deleted the retired version")
	}
}

func (v *versions) serveCollection(ctx context.Context, name string) error {
	st := v.env.State
	serving, filling, _, err := st.Versions(ctx, name)
	if err != nil || serving == nil {
		return err
	}
	v.observe(name, serving, filling)
	if filling == nil {
		requested, err := st.ReindexRequested(ctx, name)
		if err != nil || !requested {
			return err
		}
		// `cdc-indexer reindex`: the new version joins the pipeline
		// before its backfills are asked for (package reindex).
		spec := specOf(v.cfg, name)
		sit := reindex.Situation{Collection: name, Serving: serving, Fingerprint: spec.Fingerprint()}
		if err := v.startFilling(ctx, sit, spec); err != nil {
			return err
		}
		_, filling, _, err = st.Versions(ctx, name)
		if err != nil || filling == nil {
			return err
		}
		tables, err := v.versionTables(*filling)
		if err != nil {
			return err
		}
		v.pipe.AddTables(tables)
		return v.requestBackfills(ctx, *filling)
	}
	if !slices.ContainsFunc(v.pipe.Tables(), func(t *pipeline.Table) bool { return t.Collection == filling.Physical }) {
		// Another instance's fill: a standby started with a changed
		// configuration records it before it takes the slot over, and
		// fills and switches it then. This one neither asks for its
		// backfills again nor switches to it.
		return nil
	}
	statuses, err := v.store.Requests(ctx, filling.Backfills)
	if err != nil {
		return err
	}
	byID := map[int64]string{}
	for id, r := range statuses {
		byID[id] = r.Status
	}
	switch reindex.FillState(filling.Backfills, byID) {
	case reindex.FillFailed:
		v.log.Warn().Str("collection", name).Str("version", filling.Physical).Msg("a backfill of the reindex failed: asking for it again")
		return v.requestBackfills(ctx, *filling)
	case reindex.FillDone:
		return v.switchTo(ctx, *serving, *filling)
	}
	return nil
}

// observe exports the collection's version numbers.
func (v *versions) observe(name string, serving, filling *reindex.Version) {
	if v.metrics == nil {
		return
	}
	v.metrics.Versions.WithLabelValues(name, reindex.PhaseServing).Set(float64(serving.Number))
	if filling != nil {
		v.metrics.Versions.WithLabelValues(name, reindex.PhaseFilling).Set(float64(filling.Number))
	} else {
		v.metrics.Versions.DeleteLabelValues(name, reindex.PhaseFilling)
	}
}

// switchTo moves the alias from the serving version to the filled one.
func (v *versions) switchTo(ctx context.Context, serving, filling reindex.Version) error {
	name := serving.Collection
	if serving.Physical == name {
		// A plain collection holds the name: it must go before the alias
		// can take it. The stream stops writing it first; until the alias
		// exists, the name does not resolve.
		v.pipe.RetireCollection(serving.Physical)
		began := time.Now()
		if err := v.env.Sink.DeleteCollection(ctx, name); err != nil {
			return err
		}
		if err := v.env.Sink.PointAlias(ctx, name, filling.Physical); err != nil {
			return err
		}
		v.log.Info().Str("collection", name).Dur("unresolved", time.Since(began)).
			Msg("moved the plain collection behind an alias")
	} else if err := v.env.Sink.PointAlias(ctx, name, filling.Physical); err != nil {
		return err
	}
	if err := v.env.State.RecordSwitch(ctx, name, v.retention()); err != nil {
		return err
	}
	v.pipe.RetireCollection(serving.Physical)
	v.log.Info().Str("collection", name).Str("serving", filling.Physical).Str("retired", serving.Physical).
		Dur("retention", v.retention()).Msg("reindex done: the alias points at the new version")
	return nil
}

// servingTables are the mappings of each configured collection's serving
// version, for commands that read what applications query (verify); a
// collection with no recorded version keeps its mappings from described.
func (v *versions) servingTables(ctx context.Context, described []*pipeline.Table) ([]*pipeline.Table, error) {
	var out []*pipeline.Table
	for _, name := range collections(v.cfg) {
		serving, _, _, err := v.env.State.Versions(ctx, name)
		if err != nil {
			return nil, err
		}
		if serving == nil {
			for _, t := range described {
				if t.Collection == name {
					out = append(out, t)
				}
			}
			continue
		}
		ts, err := v.versionTables(*serving)
		if err != nil {
			return nil, fmt.Errorf("collection %s: %w", name, err)
		}
		out = append(out, ts...)
	}
	return out, nil
}
