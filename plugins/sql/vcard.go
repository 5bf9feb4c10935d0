package sqlbackend

import "context"

// GetVCard returns owner's stored vCard element, or sdk.ErrNotFound.
func (s *Store) GetVCard(ctx context.Context, owner string) (string, error) {
	const op = "vcard.GetVCard"
	if err := checkKey("owner", owner); err != nil {
		return "", s.fail(op, err)
	}
	var xml string
	err := s.scanOne(ctx, nil, "SELECT xml FROM koi_vcards WHERE owner = ?", []any{owner}, &xml)
	if err != nil {
		return "", s.fail(op, err)
	}
	return xml, nil
}

// SetVCard stores or replaces owner's vCard.
func (s *Store) SetVCard(ctx context.Context, owner, vcard string) error {
	const op = "vcard.SetVCard"
	if err := checkAll(checkKey("owner", owner), checkText("vcard", vcard)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, s.d.upsert("koi_vcards", []string{"owner"}, []string{"xml"}), owner, vcard)
	return s.fail(op, err)
}

// DeleteVCard removes owner's vCard; absent is fine.
func (s *Store) DeleteVCard(ctx context.Context, owner string) error {
	const op = "vcard.DeleteVCard"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_vcards WHERE owner = ?", owner)
	return s.fail(op, err)
}
