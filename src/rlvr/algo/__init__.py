"""rlvr.algo"""
