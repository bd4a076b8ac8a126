package store

// SettingLayers are a tenant's settings indexed by scope and owner, as the
// pipelines look them up for each message. Built once, then read only.
type SettingLayers map[string]map[string]string

// IndexSettings builds the layers of settings.
func IndexSettings(settings []Setting) SettingLayers {
	l := SettingLayers{}
	for _, s := range settings {
		k := layerKey(s.Scope, s.Owner)
		if l[k] == nil {
			l[k] = map[string]string{}
		}
		l[k][s.Key] = s.Value
	}
	return l
}

// Of returns the values set at scope for owner ("" for the tenant scope);
// nil when there are none.
func (l SettingLayers) Of(scope, owner string) map[string]string {
	return l[layerKey(scope, owner)]
}

func layerKey(scope, owner string) string { return scope + "\x00" + owner }
