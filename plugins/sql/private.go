package sqlbackend

import "context"

// GetPrivate returns the element owner stored under (name, namespace), or
// sdk.ErrNotFound.
func (s *Store) GetPrivate(ctx context.Context, owner, name, namespace string) (string, error) {
	const op = "private.GetPrivate"
	if err := checkAll(checkKey("owner", owner), checkKey("name", name), checkKey("namespace", namespace)); err != nil {
		return "", s.fail(op, err)
	}
	var xml string
	err := s.scanOne(ctx, nil, "SELECT xml FROM koi_private_storage WHERE owner = ? AND name = ? AND ns = ?", []any{owner, name, namespace}, &xml)
	if err != nil {
		return "", s.fail(op, err)
	}
	return xml, nil
}

// SetPrivate stores or replaces the element under (name, namespace).
func (s *Store) SetPrivate(ctx context.Context, owner, name, namespace, xml string) error {
	const op = "private.SetPrivate"
	if err := checkAll(checkKey("owner", owner), checkKey("name", name), checkKey("namespace", namespace), checkText("xml", xml)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, s.d.upsert("koi_private_storage", []string{"owner", "name", "ns"}, []string{"xml"}),
		owner, name, namespace, xml)
	return s.fail(op, err)
}

// DeletePrivate removes every element owner stored; absent is fine.
func (s *Store) DeletePrivate(ctx context.Context, owner string) error {
	const op = "private.DeletePrivate"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_private_storage WHERE owner = ?", owner)
	return s.fail(op, err)
}
