package sdbus

import (
	"context"
	"fmt"
)

// ManagerPath is systemd's manager object (org.freedesktop.systemd1(5)).
const ManagerPath ObjectPath = "/org/freedesktop/systemd1"

// The interfaces of systemd's objects.
const (
	ManagerInterface    = "org.freedesktop.systemd1.Manager"
	UnitInterface       = "org.freedesktop.systemd1.Unit"
	ServiceInterface    = "org.freedesktop.systemd1.Service"
	PropertiesInterface = "org.freedesktop.DBus.Properties"
)

// LoadUnit returns the object path of the unit called name, loading it
// when systemd has not yet. A unit with no unit file still has one: its
// LoadState says "not-found".
func (c *Conn) LoadUnit(ctx context.Context, name string) (ObjectPath, error) {
	out, err := c.Call(ctx, ManagerPath, ManagerInterface+".LoadUnit", "s", name)
	if err != nil {
		return "", fmt.Errorf("load unit %s: %w", name, err)
	}
	return one[ObjectPath](out, "LoadUnit")
}

// StartUnit queues a start job for the unit called name, with mode
// "replace", "fail", ... as systemctl's --job-mode, and returns the job's
// object path.
func (c *Conn) StartUnit(ctx context.Context, name, mode string) (ObjectPath, error) {
	out, err := c.Call(ctx, ManagerPath, ManagerInterface+".StartUnit", "ss", name, mode)
	if err != nil {
		return "", fmt.Errorf("start unit %s: %w", name, err)
	}
	return one[ObjectPath](out, "StartUnit")
}

// Property returns the value of the property name of iface on the object
// at path, out of its variant.
func (c *Conn) Property(ctx context.Context, path ObjectPath, iface, name string) (any, error) {
	out, err := c.Call(ctx, path, PropertiesInterface+".Get", "ss", iface, name)
	if err != nil {
		return nil, fmt.Errorf("get %s of %s: %w", name, path, err)
	}
	v, err := one[Variant](out, "Get")
	return v.Value, err
}

// Properties returns every property of iface on the object at path, out of
// their variants.
func (c *Conn) Properties(ctx context.Context, path ObjectPath, iface string) (map[string]any, error) {
	out, err := c.Call(ctx, path, PropertiesInterface+".GetAll", "s", iface)
	if err != nil {
		return nil, fmt.Errorf("get properties of %s: %w", path, err)
	}
	m, err := one[map[any]any](out, "GetAll")
	return unwrap(m), err
}

// unwrap turns an a{sv} into its names and plain values.
func unwrap(m map[any]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		name, _ := k.(string)
		vv, _ := v.(Variant)
		out[name] = vv.Value
	}
	return out
}

// one is the single value of a reply, of type T.
func one[T any](out []any, member string) (T, error) {
	var zero T
	if len(out) != 1 {
		return zero, fmt.Errorf("%s replied %d values, want 1", member, len(out))
	}
	v, ok := out[0].(T)
	if !ok {
		return zero, fmt.Errorf("%s replied a %T, want a %T", member, out[0], zero)
	}
	return v, nil
}

// PropertiesChanged decodes the signal org.freedesktop.DBus.Properties'
// PropertiesChanged: the interface whose properties changed, the changed
// ones with their new values, the names of those that changed without
// their value. ok is false for any other message.
func PropertiesChanged(m *Message) (iface string, changed map[string]any, invalidated []string, ok bool) {
	if m.Type != TypeSignal || m.Interface != PropertiesInterface || m.Member != "PropertiesChanged" ||
		m.Signature != "sa{sv}as" {
		return "", nil, nil, false
	}
	iface, _ = m.Body[0].(string)
	d, _ := m.Body[1].(map[any]any)
	for _, n := range m.Body[2].([]any) {
		s, _ := n.(string)
		invalidated = append(invalidated, s)
	}
	return iface, unwrap(d), invalidated, true
}

// JobRemoved decodes the Manager's JobRemoved signal: a job ended, for
// unit, with result ("done", "failed", "canceled", "timeout",
// "dependency", "skipped"). ok is false for any other message.
func JobRemoved(m *Message) (id uint32, job ObjectPath, unit, result string, ok bool) {
	if m.Type != TypeSignal || m.Interface != ManagerInterface || m.Member != "JobRemoved" ||
		m.Signature != "uoss" {
		return 0, "", "", "", false
	}
	return m.Body[0].(uint32), m.Body[1].(ObjectPath), m.Body[2].(string), m.Body[3].(string), true
}
